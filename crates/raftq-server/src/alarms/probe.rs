//! Reads of the node's own resources, from /proc, cgroups and statvfs.

use std::path::Path;

/// Resident set size of this process.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size()?))
}

#[allow(unsafe_code)]
fn page_size() -> Option<u64> {
    // SAFETY: sysconf reads a constant of the running system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0)
}

/// The memory this process may use: the machine's, or its cgroup's limit when
/// that is lower (a container's limit is what the OOM killer enforces).
pub fn total_memory_bytes() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map(|kib| kib.saturating_mul(1024));
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
    match (machine, cgroup) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    }
}

/// Bytes an unprivileged writer can still put on the filesystem of `dir`.
#[allow(unsafe_code)]
pub fn free_disk_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stat` is written by statvfs
    // before it is read, which only happens when statvfs reports success.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    // fsblkcnt_t and c_ulong are 32 bits on some targets.
    #[allow(clippy::unnecessary_cast)]
    let (blocks, size) = (stat.f_bavail as u64, stat.f_frsize as u64);
    Some(blocks.saturating_mul(size))
}

/// Allocations this large are mapped on their own and unmapped when freed.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Keeps glibc from raising its mmap threshold. By default every freed mapped
/// block raises it to that block's size (up to 32 MiB), so after the first
/// large batch every payload and request buffer came from the arenas, where
/// freed space stays resident: a node that had drained a 56 MiB backlog kept
/// 160-190 MiB resident (106 MiB with the threshold fixed), and a memory
/// alarm raised by the backlog never cleared. Call before any thread starts.
#[allow(unsafe_code)]
pub fn keep_large_allocations_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other
    // threads exist, it races with no allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Gives whole free pages of the allocator back to the system. glibc keeps the
/// holes of freed blocks in its arenas unless asked, so resident memory would
/// not fall when a backlog drains (nor after a snapshot's clone is freed).
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes
    // the arena locks itself and touches no memory that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_its_filesystem_can_be_read() {
        let resident = resident_bytes().expect("resident memory");
        let total = total_memory_bytes().expect("total memory");
        assert!(resident > 0 && resident < total, "{resident} of {total}");
        let free = free_disk_bytes(Path::new(".")).expect("free disk");
        assert!(free > 0);
        assert!(free_disk_bytes(Path::new("/no/such/dir")).is_none());
    }
}
