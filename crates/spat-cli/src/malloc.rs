//! Keeps freed heap memory in the process (glibc's `malloc`) instead of handing it back to the
//! kernel after every step.
//!
//! Every tensor of a step is a fresh allocation of a few MiB. With glibc's defaults such
//! blocks are `mmap`ed and `munmap`ed (or the heap top is trimmed) each time, so each new
//! activation pays a page fault and a kernel zeroing per 4 KiB page, on a CPU step more than
//! the element-wise arithmetic on it. Raising the thresholds lets freed blocks serve the next
//! step's tensors.
#![allow(unsafe_code)]

/// Blocks up to this size come from the heap (glibc's largest allowed `mmap` threshold).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Free memory at the heap top kept before trimming: a few steps' worth of activations.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 1 << 30;

/// Applies the policy above to this process; returns whether the allocator accepted it
/// (`false` off glibc, where nothing is changed). Call once, early.
pub(crate) fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes two tuning parameters of glibc's allocator; it takes
        // plain integers and is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_thresholds() {
        assert!(super::retain_freed_memory());
    }
}
