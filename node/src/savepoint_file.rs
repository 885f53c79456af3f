//! Savepoint files on disk: written whole and durably or not at all, read back with a size bound.
//!
//! The core makes a savepoint's bytes ([`rivulet_core::state::savepoint`]); the JobManager node
//! writes them into the directory asked for, as `<directory>/savepoint-<job>-<checkpoint>.rvsp`:
//! first under a hidden temporary name, synced, then renamed into place and the directory synced,
//! so a crash leaves either the whole file or none. An existing file is never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use rivulet_core::limits::SAVEPOINT_BYTES_MAX;
use rivulet_core::state::savepoint::{decode_savepoint, Savepoint};

/// Writes a savepoint file; returns its path.
pub fn write_savepoint(directory: &Path, file_name: &str, bytes: &[u8]) -> Result<String, String> {
    let shown = directory.display();
    if !directory.is_absolute() {
        return Err(format!("the savepoint directory {shown} is not an absolute path"));
    }
    fs::create_dir_all(directory)
        .map_err(|e| format!("cannot create the savepoint directory {shown}: {e}"))?;
    let target = directory.join(file_name);
    if target.exists() {
        return Err(format!("{} exists already; savepoints are never overwritten", target.display()));
    }
    let temporary = directory.join(format!(".{file_name}.writing"));
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, &target)?;
        // The rename is durable once the directory is.
        File::open(directory)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&temporary);
        format!("cannot write the savepoint {}: {e}", target.display())
    })?;
    Ok(target.display().to_string())
}

/// Reads and decodes the savepoint file at `path`; the error names the file and what is wrong.
pub fn read_savepoint(path: &Path) -> Result<Savepoint, String> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| format!("cannot read the savepoint {shown}: {e}"))?;
    let length = file.metadata().map_err(|e| format!("cannot read the savepoint {shown}: {e}"))?.len();
    if length > SAVEPOINT_BYTES_MAX {
        return Err(format!(
            "the savepoint {shown} has {length} bytes; at most {SAVEPOINT_BYTES_MAX} are read"
        ));
    }
    let mut bytes = Vec::with_capacity(length as usize);
    // At most one byte past the limit, should the file grow while it is read.
    file.take(SAVEPOINT_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the savepoint {shown}: {e}"))?;
    decode_savepoint(&bytes).map_err(|e| format!("{shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_savepoint_file_is_written_once_and_damage_is_named_on_reading() {
        let dir = tempfile::tempdir().unwrap();
        let sp = dir.path().join("sp");
        let path = write_savepoint(&sp, "savepoint-job-1-2.rvsp", b"not really").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"not really");
        let again = write_savepoint(&sp, "savepoint-job-1-2.rvsp", b"x").unwrap_err();
        assert!(again.contains("exists already"), "{again}");
        assert_eq!(fs::read_dir(&sp).unwrap().count(), 1, "no temporary file is left");
        let error = read_savepoint(Path::new(&path)).unwrap_err();
        assert!(error.contains("savepoint-job-1-2.rvsp") && error.contains("header"), "{error}");
        let error = read_savepoint(&sp.join("missing.rvsp")).unwrap_err();
        assert!(error.starts_with("cannot read the savepoint"), "{error}");
        let error = write_savepoint(Path::new("relative"), "f", b"x").unwrap_err();
        assert!(error.contains("not an absolute path"), "{error}");
    }
}
