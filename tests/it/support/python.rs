//! The official MCP Python SDK, for tests that need a real client of another make: installed into a
//! virtual environment under `target/` from `tests/python/requirements.txt` (pinned) the first time,
//! and again when the requirements change.

use std::path::PathBuf;
use std::process::Command;

/// The virtual environment's `python`, with the SDK installed (one test process installs it at a time).
pub fn sdk_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let requirements = root.join("tests/python/requirements.txt");
    let venv = root.join("target/python-sdk-venv");
    std::fs::create_dir_all(root.join("target")).unwrap();
    let lock = std::fs::File::create(root.join("target/python-sdk-venv.lock")).expect("lock file");
    lock.lock().expect("lock the virtual environment");
    let wanted = std::fs::read(&requirements).expect("tests/python/requirements.txt");
    let installed = venv.join("requirements.txt");
    if std::fs::read(&installed).ok().as_deref() != Some(wanted.as_slice()) {
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("run python3 -m venv");
        assert!(made.success(), "python3 -m venv failed (Debian: apt-get install python3-venv)");
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .status()
            .expect("run pip");
        assert!(pip.success(), "pip install -r tests/python/requirements.txt failed");
        std::fs::write(&installed, &wanted).unwrap();
    }
    venv.join("bin/python")
}

/// A script of `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(name)
}
