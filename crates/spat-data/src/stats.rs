use spat_spec::report::SplitStats;

use crate::image_set::ImageSet;

/// Size, examples per class, and per-channel mean / standard deviation of the pixel values scaled
/// to `[0, 1]` (population statistics over every pixel of every image).
pub fn split_stats(set: &ImageSet) -> SplitStats {
    let mut per_class = vec![0usize; set.num_classes()];
    for &l in set.labels() {
        per_class[l as usize] += 1;
    }
    let (c, h, w) = set.shape();
    let plane = h * w;
    // Exact integer sums: 50,000 images * 1,024 pixels * 255^2 is ~3.3e12, far inside u64.
    let mut sum = vec![0u64; c];
    let mut sum_sq = vec![0u64; c];
    for i in 0..set.len() {
        for (ch, px) in set.image(i).chunks_exact(plane).enumerate() {
            let (mut s, mut s2) = (0u64, 0u64);
            for &v in px {
                let v = v as u64;
                s += v;
                s2 += v * v;
            }
            sum[ch] += s;
            sum_sq[ch] += s2;
        }
    }
    let n = (set.len() * plane) as f64;
    let mut mean = Vec::with_capacity(c);
    let mut std = Vec::with_capacity(c);
    for ch in 0..c {
        if n == 0.0 {
            mean.push(f64::NAN);
            std.push(f64::NAN);
            continue;
        }
        let m = sum[ch] as f64 / n;
        let var = (sum_sq[ch] as f64 / n - m * m).max(0.0);
        mean.push(m / 255.0);
        std.push(var.sqrt() / 255.0);
    }
    SplitStats {
        count: set.len(),
        per_class,
        mean,
        std,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_known_set() {
        // Two 1x1x2 images: channel values {0, 255, 255, 255}.
        let set = ImageSet::new(vec![0, 255, 255, 255], vec![1, 1], (1, 1, 2), 3, "t").unwrap();
        let s = split_stats(&set);
        assert_eq!(s.count, 2);
        assert_eq!(s.per_class, vec![0, 2, 0]);
        assert!((s.mean[0] - 0.75).abs() < 1e-12);
        // Population std of {0, 1, 1, 1} = sqrt(0.75 - 0.5625).
        assert!((s.std[0] - 0.1875f64.sqrt()).abs() < 1e-12);
    }
}
