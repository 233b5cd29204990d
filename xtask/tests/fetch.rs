//! `fetch-data` (which downloads with curl) against a local HTTP server on 127.0.0.1 serving a tiny
//! `.tar.gz` built here, and against `file://` URLs: no test reaches the internet.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    let server = Server::start(body, status, chunked);
    (server.url("/cifar-10-binary.tar.gz"), server.hits)
}

/// A local HTTP server: every request line is recorded; a request for `/moved` is redirected to
/// `/cifar-10-binary.tar.gz`, any other answered with `status` and `body`.
struct Server {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(body: Vec<u8>, status: u16, chunked: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (counter, log) = (hits.clone(), requests.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let moved = request.split_whitespace().nth(1) == Some("/moved");
                log.lock().unwrap().push(request.trim_end().to_string());
                let _ = stream.write_all(&response(&body, status, chunked, moved));
            }
        });
        Server {
            addr,
            hits,
            requests,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn response(body: &[u8], status: u16, chunked: bool, moved: bool) -> Vec<u8> {
    if moved {
        return b"HTTP/1.1 302 Found\r\nLocation: /cifar-10-binary.tar.gz\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            .to_vec();
    }
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let mut response = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n").into_bytes();
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
        response.extend(body);
    }
    response
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

#[test]
fn file_urls_and_plain_paths_are_read_too() {
    let archive = tiny_archive();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("mirror.tar.gz");
    std::fs::write(&local, &archive).unwrap();
    let file_url = format!("file://{}", local.display());
    for (i, url) in [file_url, local.display().to_string()].iter().enumerate() {
        let out = tmp.path().join(format!("data{i}"));
        let path = fetch_archive(url, &md5_hex(&archive), "cifar-10-batches-bin", &out).unwrap();
        assert_eq!(
            std::fs::read(path.join("test_batch.bin")).unwrap(),
            vec![7u8; 3073]
        );
        assert_eq!(entries(&out), vec!["cifar-10-batches-bin"]);
    }
    // A file:// URL that names nothing is an error naming the URL; nothing is written.
    let out = tmp.path().join("none");
    let missing = format!("file://{}", tmp.path().join("absent.tar.gz").display());
    let msg = fetch_archive(&missing, "x", "cifar-10-batches-bin", &out)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("could not download") && msg.contains(&missing),
        "{msg}"
    );
    assert!(!out.exists());
}

#[test]
fn redirects_are_followed() {
    let archive = tiny_archive();
    let server = Server::start(archive.clone(), 200, false);
    let tmp = tempfile::tempdir().unwrap();
    let path = fetch_archive(
        &server.url("/moved"),
        &md5_hex(&archive),
        "cifar-10-batches-bin",
        tmp.path(),
    )
    .unwrap();
    assert!(path.join("test_batch.bin").is_file());
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(
        requests,
        [
            "GET /moved HTTP/1.1",
            "GET /cifar-10-binary.tar.gz HTTP/1.1"
        ]
    );
}

#[test]
fn a_server_that_is_not_there_is_an_error_and_writes_nothing() {
    // A port that was free a moment ago: nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz");
    let msg = fetch_archive(&url, "x", "cifar-10-batches-bin", tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("could not download") && msg.contains(&url),
        "{msg}"
    );
    assert!(entries(tmp.path()).is_empty());
}

/// curl takes its proxy from the environment: the xtask process is given `http_proxy` pointing
/// at the local server, which then receives the request for a host that does not resolve, in
/// proxy form.
#[test]
fn the_proxy_in_the_environment_is_used() {
    let server = Server::start(tiny_archive(), 200, false);
    let tmp = tempfile::tempdir().unwrap();
    let url = "http://spat-fetch.invalid/cifar-10-binary.tar.gz";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch-data", "cifar10", "--url", url, "--out"])
        .arg(tmp.path())
        .env("http_proxy", server.url(""))
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The bytes came (through the proxy): the official checksum, not this archive's, is wrong.
    assert!(!out.status.success());
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert_eq!(
        server.requests.lock().unwrap().clone(),
        [format!("GET {url} HTTP/1.1")]
    );
    assert!(entries(tmp.path()).is_empty());
}
