use candle_core::{Device, Var};
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn t<F: FnMut() -> candle_core::Result<()>>(name: &str, mut f: F) {
    f().unwrap();
    let s = cpu();
    for _ in 0..10 {
        f().unwrap();
    }
    println!("{name}: {:.1} ms CPU", (cpu() - s) * 1e3 / 10.0);
}
fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut rng = spat_core::rng::host_rng(0, 0);
    for (ci, co, hw, s, k) in [
        (3usize, 8usize, 32usize, 1usize, 3usize),
        (8, 8, 32, 1, 3),
        (8, 16, 32, 2, 3),
        (16, 16, 16, 1, 3),
        (16, 32, 16, 2, 3),
        (32, 32, 8, 1, 3),
        (8, 16, 32, 2, 1),
    ] {
        let x = spat_core::rng::uniform(&mut rng, (128, ci, hw, hw), -1.0, 1.0, &dev)?;
        let w = Var::from_tensor(&spat_core::rng::uniform(
            &mut rng,
            (co, ci, k, k),
            -0.1,
            0.1,
            &dev,
        )?)?;
        let xv = Var::from_tensor(&x)?;
        let p = k / 2;
        let y = x.conv2d(w.as_tensor(), p, s, 1, 1)?;
        let g = y.ones_like()?;
        let op = if s == 2 { 1 } else { 0 };
        let tag = format!("{ci}->{co} {hw} s{s} k{k}");
        t(&format!("{tag} fwd"), || {
            x.conv2d(w.as_tensor(), p, s, 1, 1)?;
            Ok(())
        });
        t(&format!("{tag} fwd+bwd"), || {
            xv.as_tensor()
                .conv2d(w.as_tensor(), p, s, 1, 1)?
                .sum_all()?
                .backward()?;
            Ok(())
        });
        t(&format!("{tag}   grad input (conv_transpose2d)"), || {
            g.conv_transpose2d(w.as_tensor(), p, op, s, 1)?;
            Ok(())
        });
        t(&format!("{tag}   grad kernel"), || {
            x.transpose(0, 1)?.conv2d(&g.transpose(0, 1)?, p, 1, s, 1)?;
            Ok(())
        });
    }
    Ok(())
}
