//! Rough speed of small appends with and without fsync, on the mount and on
//! its backing directory. A measurement, not a test: run it by hand with
//! `cargo test -p raftq-lazyfs --release --test throughput -- --ignored --nocapture`.

mod support;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use support::Lazy;

const OPS: u32 = 5000;

fn appends_per_second(path: &Path, fsync: bool) -> f64 {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    let record = [7u8; 256];
    let started = Instant::now();
    for _ in 0..OPS {
        f.write_all(&record).expect("write");
        if fsync {
            f.sync_data().expect("fdatasync");
        }
    }
    f64::from(OPS) / started.elapsed().as_secs_f64()
}

#[test]
#[ignore = "a measurement; run by hand"]
fn small_appends_per_second() {
    let Some(lazy) = Lazy::mount("small_appends_per_second") else {
        return;
    };
    for (label, fsync) in [("256 B append + fdatasync", true), ("256 B append", false)] {
        let mounted = appends_per_second(&lazy.path(&format!("m{fsync}")), fsync);
        let direct = appends_per_second(&lazy.backing_path(&format!("b{fsync}")), fsync);
        println!("{label}: mount {mounted:.0}/s, backing directory {direct:.0}/s");
    }
}
