//! `fetch-data` against a local HTTP server on 127.0.0.1 serving a tiny `.tar.gz` built here.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use md5::{Digest, Md5};
use xtask::fetch::{fetch_archive, run, Args};

/// A `.tar.gz` holding `cifar-10-batches-bin/test_batch.bin` and `.../batches.meta.txt`.
fn tiny_archive() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in [
        ("cifar-10-batches-bin/test_batch.bin", vec![7u8; 3073]),
        (
            "cifar-10-batches-bin/batches.meta.txt",
            b"airplane\n".to_vec(),
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, &data[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serves `body` to every request with `status`, plainly or chunked; counts requests.
fn serve(body: Vec<u8>, status: u16, chunked: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let reason = if status == 200 { "OK" } else { "Not Found" };
            let mut response =
                format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n").into_bytes();
            if chunked {
                response.extend(b"Transfer-Encoding: chunked\r\n\r\n");
                for chunk in body.chunks(1000) {
                    response.extend(format!("{:x}\r\n", chunk.len()).bytes());
                    response.extend(chunk);
                    response.extend(b"\r\n");
                }
                response.extend(b"0\r\n\r\n");
            } else {
                response.extend(format!("Content-Length: {}\r\n\r\n", body.len()).bytes());
                response.extend(&body);
            }
            let _ = stream.write_all(&response);
        }
    });
    (format!("http://{addr}/cifar-10-binary.tar.gz"), hits)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn good_checksum_puts_the_files_in_place() {
    for chunked in [false, true] {
        let archive = tiny_archive();
        let (url, _) = serve(archive.clone(), 200, chunked);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("data");
        let path = fetch_archive(&url, &md5_hex(&archive), "cifar-10-batches-bin", &out).unwrap();
        assert_eq!(path, out.join("cifar-10-batches-bin"));
        assert_eq!(
            std::fs::read(path.join("test_batch.bin")).unwrap(),
            vec![7u8; 3073]
        );
        assert_eq!(
            std::fs::read(path.join("batches.meta.txt")).unwrap(),
            b"airplane\n"
        );
        // No staging directory or other leftovers.
        assert_eq!(entries(&out), vec!["cifar-10-batches-bin"]);
    }
}

#[test]
fn wrong_checksum_is_an_error_and_writes_nothing() {
    let archive = tiny_archive();
    let (url, _) = serve(archive, 200, false);
    let tmp = tempfile::tempdir().unwrap();

    // Output directory absent: it is not even created.
    let out = tmp.path().join("data");
    let wrong = "00000000000000000000000000000000";
    let msg = fetch_archive(&url, wrong, "cifar-10-batches-bin", &out)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("checksum mismatch") && msg.contains(wrong),
        "{msg}"
    );
    assert!(!out.exists());

    // Output directory present: it stays empty.
    std::fs::create_dir(&out).unwrap();
    assert!(fetch_archive(&url, wrong, "cifar-10-batches-bin", &out).is_err());
    assert!(entries(&out).is_empty());

    // Through the command with a --url mirror: the official checksum must still match.
    let msg = run(Args {
        dataset: "cifar10".into(),
        out: Some(out.clone()),
        url: Some(url),
    })
    .unwrap_err()
    .to_string();
    assert!(msg.contains("c32a1d4ab5d03f1284b67883e8d87530"), "{msg}");
    assert!(entries(&out).is_empty());
}

#[test]
fn archive_without_the_expected_folder_leaves_nothing() {
    let archive = tiny_archive();
    let (url, _) = serve(archive.clone(), 200, false);
    let tmp = tempfile::tempdir().unwrap();
    let msg = fetch_archive(&url, &md5_hex(&archive), "cifar-100-binary", tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("does not contain the folder cifar-100-binary/"),
        "{msg}"
    );
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

#[test]
fn http_errors_and_bad_arguments() {
    let (url, _) = serve(b"no".to_vec(), 404, false);
    let tmp = tempfile::tempdir().unwrap();
    let msg = fetch_archive(&url, "x", "cifar-10-batches-bin", tmp.path())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("HTTP 404"), "{msg}");
    assert!(entries(tmp.path()).is_empty());

    let msg = run(Args {
        dataset: "mnist".into(),
        out: Some(tmp.path().to_path_buf()),
        url: None,
    })
    .unwrap_err()
    .to_string();
    assert!(msg.contains("mnist") && msg.contains("ti500k"), "{msg}");

    // ti500k only explains where to get the file.
    run(Args {
        dataset: "ti500k".into(),
        out: Some(tmp.path().to_path_buf()),
        url: None,
    })
    .unwrap();
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn an_existing_data_set_is_not_downloaded_again() {
    let (url, hits) = serve(tiny_archive(), 200, false);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("cifar-10-batches-bin")).unwrap();
    run(Args {
        dataset: "cifar10".into(),
        out: Some(tmp.path().to_path_buf()),
        url: Some(url),
    })
    .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
