//! Fuzz targets for raftq's pure code, shared by the libFuzzer binaries
//! (`scripts/fuzz.sh`) and by the replay binaries and tests of a normal build.
//!
//! - [`queue_ops::run`]: arbitrary command sequences against `WorkQueue` and
//!   `StreamLog`, checking the semantics contract after every command.
//! - [`decoders::run`]: arbitrary bytes through the peer transport's and the
//!   store's decoders.

pub mod decoders;
pub mod queue_ops;

use std::path::Path;

/// Runs `target` on every file named (a directory: on every file in it), as
/// the replay binaries do outside fuzzing. Returns how many inputs ran.
pub fn replay(target: fn(&[u8]), paths: &[String]) -> std::io::Result<usize> {
    let mut n = 0;
    for path in paths {
        let path = Path::new(path);
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            for entry in entries {
                target(&std::fs::read(&entry)?);
                n += 1;
            }
        } else {
            target(&std::fs::read(path)?);
            n += 1;
        }
    }
    Ok(n)
}

/// Replay binary's `main`: the inputs named on the command line.
pub fn replay_main(target: fn(&[u8])) {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    match replay(target, &paths) {
        Ok(n) => println!("replayed {n} inputs"),
        Err(e) => {
            eprintln!("replay: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic inputs for the normal test run: no fuzzer there, but
    /// the targets' own checks still run on a few thousand inputs.
    fn inputs(n: usize) -> impl Iterator<Item = Vec<u8>> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..n).map(move |i| {
            let len = (i * 7) % 600;
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect()
        })
    }

    fn regressions(target: &str) -> Vec<String> {
        vec![format!(
            "{}/regressions/{target}",
            env!("CARGO_MANIFEST_DIR")
        )]
    }

    #[test]
    fn queue_target_holds_on_pseudo_random_inputs_and_past_findings() {
        for input in inputs(3_000) {
            queue_ops::run(&input);
        }
        replay(queue_ops::run, &regressions("fuzz_queue")).expect("regression inputs");
    }

    #[test]
    fn decode_target_holds_on_pseudo_random_inputs_and_past_findings() {
        for input in inputs(3_000) {
            decoders::run(&input);
        }
        replay(decoders::run, &regressions("fuzz_decode")).expect("regression inputs");
    }
}
