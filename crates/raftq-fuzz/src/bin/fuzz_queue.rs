//! libFuzzer target under `--cfg fuzzing`; otherwise replays the inputs named
//! on the command line.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| raftq_fuzz::queue_ops::run(data));

#[cfg(not(fuzzing))]
fn main() {
    raftq_fuzz::replay_main(raftq_fuzz::queue_ops::run);
}
