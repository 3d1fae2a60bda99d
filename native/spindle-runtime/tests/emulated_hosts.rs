//! The all-reduce algorithms between separate processes on four emulated hosts (`tests/netns/hosts.sh`: network
//! namespaces on one bridge, made and removed by the script), two ranks per host, so that two-level has hosts to
//! group by: every algorithm gives the same bits on every rank and the ring's sums to 1e-5
//! (`tests/netns/allreduce-check.sh`). Where namespaces cannot be made (not root), it says so and passes.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn every_algorithm_agrees_across_processes_on_four_emulated_hosts() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // cargo test builds the examples next to this test's own directory: target/<profile>/examples.
    let exe = std::env::current_exe().expect("this test's path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples/allreduce_rank");
    assert!(
        bin.is_file(),
        "{} is missing: cargo builds it with the tests",
        bin.display()
    );
    let control = tempfile::tempdir().expect("a control directory");
    let out = Command::new("bash")
        .arg(root.join("tests/netns/hosts.sh"))
        .arg("run")
        .arg(control.path())
        .arg("--")
        .arg("bash")
        .arg(root.join("tests/netns/allreduce-check.sh"))
        .arg(&bin)
        .env("HOSTS_N", "4")
        .env("HOSTS_TIMEOUT", "300")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(77) {
        eprintln!("{}", stdout.trim());
        return;
    }
    assert!(
        out.status.success(),
        "the check failed:\n{stdout}\n{stderr}"
    );
    let checks: Vec<&str> = stdout.lines().filter(|l| l.starts_with("CHECK ")).collect();
    // 5 algorithms (auto among them) x 3 sizes, each on 8 ranks.
    assert_eq!(checks.len(), 15, "{stdout}");
    for line in checks {
        assert!(
            line.contains("ranks 8 identical-on-every-rank true"),
            "{line}"
        );
    }
}
