use super::read::read_bounded;
use super::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

thread_local! {
    static TEMPS: RefCell<Vec<OsString>> = const { RefCell::new(Vec::new()) };
}

/// Remembers the temporary names this thread's writes used (each test runs on its own thread).
pub(super) fn record_temp(name: &OsStr) {
    TEMPS.with(|t| t.borrow_mut().push(name.to_owned()));
}

thread_local! {
    static PLANTED: RefCell<Vec<OsString>> = const { RefCell::new(Vec::new()) };
}

/// The next temporary name a write on this thread will try: one a test planted something at
/// (as if it had guessed the random name), or else the random one.
pub(super) fn planted_or(random: OsString) -> OsString {
    PLANTED.with(|p| p.borrow_mut().pop()).unwrap_or(random)
}

thread_local! {
    static BETWEEN_MKDIR_AND_OPEN: RefCell<Option<Box<dyn FnOnce(&Path)>>> =
        const { RefCell::new(None) };
}

/// Runs what a test set to happen in the window between making a private folder and opening
/// it: where a user would swap the folder for one of their own.
pub(super) fn between_mkdir_and_open(private: &Path) {
    if let Some(swap) = BETWEEN_MKDIR_AND_OPEN.with(|b| b.borrow_mut().take()) {
        swap(private);
    }
}

fn take_temps() -> Vec<OsString> {
    TEMPS.with(|t| std::mem::take(&mut *t.borrow_mut()))
}

/// Whether this run is root's, as the tests of giving things away need. Under CI it must be
/// (`scripts/test.sh` runs them as root); elsewhere they skip.
fn as_root() -> bool {
    if running_as_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs the tests as root"
    );
    println!("skipped: changing ownership needs root");
    false
}

/// A scratch root holding a `home` and a `victim` folder outside it: a 0751 folder with a
/// 0640 file and a subfolder, the kind of place a planted link would aim at.
struct Scene {
    _root: tempfile::TempDir,
    home: PathBuf,
    victim: PathBuf,
}

fn scene() -> Scene {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let victim = root.path().join("victim");
    std::fs::create_dir(&home).unwrap();
    std::fs::create_dir_all(victim.join("sub")).unwrap();
    std::fs::write(victim.join("keep"), b"precious").unwrap();
    std::fs::write(victim.join("sub/inner"), b"also precious").unwrap();
    std::fs::set_permissions(victim.join("keep"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o751)).unwrap();
    Scene {
        _root: root,
        home,
        victim,
    }
}

/// Every entry below `dir` (and `dir` itself): kind, mode, owner and content, links unfollowed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let content = if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
            Vec::new()
        } else if meta.is_file() {
            std::fs::read(&path).unwrap()
        } else {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_vec()
        };
        out.insert(path, (meta.mode(), meta.uid(), meta.gid(), content));
    }
    out
}

fn private() -> Option<Create> {
    Some(Create {
        mode: 0o700,
        owner: None,
    })
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_link_at_any_component_is_refused_and_its_target_is_untouched() {
    for planted in ["a", "a/b", "a/b/state.json"] {
        let s = scene();
        let link = s.home.join(planted);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        if planted.ends_with(".json") {
            symlink(s.victim.join("keep"), &link).unwrap();
        } else {
            symlink(&s.victim, &link).unwrap();
        }
        let before = snapshot(&s.victim);
        let home = SecureDir::open_trusted(&s.home).unwrap();

        if planted.ends_with(".json") {
            let dir = home.open_dir("a/b", private()).unwrap();
            let err = dir.read_file("state.json", DOCUMENT_MAX).unwrap_err();
            assert!(
                matches!(&err, SecureFsError::Symlink { path } if *path == link),
                "{err}"
            );
            let err = dir.try_lock_file("state.json", None).unwrap_err();
            assert!(
                matches!(&err, SecureFsError::Symlink { path } if *path == link),
                "{err}"
            );
            let err = dir.open_dir("state.json", private()).unwrap_err();
            assert!(matches!(&err, SecureFsError::Symlink { .. }), "{err}");
        } else {
            for create in [None, private()] {
                let err = home.open_dir("a/b/identity", create).unwrap_err();
                assert!(
                    matches!(&err, SecureFsError::Symlink { path } if *path == link),
                    "{err}"
                );
                assert_eq!(
                    err.to_string(),
                    format!(
                        "{} is a symbolic link; devicetrust does not follow links in a user's home",
                        link.display()
                    )
                );
            }
        }
        assert_eq!(
            snapshot(&s.victim),
            before,
            "a link at {planted} reached its target"
        );
    }
}

#[test]
fn writes_use_fresh_temporary_names_and_replace_a_link_at_the_target() {
    let s = scene();
    // What the old code's predictable name would have met, and a link at the target itself.
    let predictable = format!(".state.json.tmp-{}", std::process::id());
    symlink(s.victim.join("keep"), s.home.join(&predictable)).unwrap();
    symlink(s.victim.join("keep"), s.home.join("state.json")).unwrap();
    let before = snapshot(&s.victim);
    let home = SecureDir::open_trusted(&s.home).unwrap();

    take_temps();
    home.write_file_atomic("state.json", b"one", 0o600, None)
        .unwrap();
    home.write_file_atomic("state.json", b"two", 0o600, None)
        .unwrap();
    let temps = take_temps();
    assert_eq!(temps.len(), 2);
    assert_ne!(temps[0], temps[1]);
    for temp in &temps {
        assert!(temp.as_bytes().starts_with(b".state.json.tmp-"), "{temp:?}");
        assert_ne!(temp.as_os_str(), OsStr::new(&predictable));
    }

    assert_eq!(snapshot(&s.victim), before, "the link's target was written");
    let target = std::fs::symlink_metadata(s.home.join("state.json")).unwrap();
    assert!(target.is_file(), "the link was replaced by a file");
    assert_eq!(std::fs::read(s.home.join("state.json")).unwrap(), b"two");
    let names: Vec<_> = home
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [OsString::from(&predictable), "state.json".into()]);
}

#[test]
fn a_failed_write_leaves_no_temporary_file() {
    let s = scene();
    std::fs::create_dir_all(s.home.join("state.json/occupied")).unwrap();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let err = home
        .write_file_atomic("state.json", b"x", 0o600, None)
        .unwrap_err();
    assert!(
        matches!(&err, SecureFsError::Io { action: "write", path, .. } if *path == s.home.join("state.json")),
        "{err}"
    );
    let names: Vec<_> = home
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["state.json"]);
}

#[test]
fn modes_are_exact_whatever_the_umask() {
    // 0666 and 0775 are what a 022 or 002 umask would narrow.
    let s = scene();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let create = Create {
        mode: 0o775,
        owner: None,
    };
    let dir = home.open_dir("x/y", Some(create)).unwrap();
    assert_eq!(dir.path(), s.home.join("x/y"));
    dir.write_file_atomic("f", b"", 0o666, None).unwrap();
    assert_eq!(mode_of(&s.home.join("x")), 0o775);
    assert_eq!(mode_of(&s.home.join("x/y")), 0o775);
    assert_eq!(mode_of(&s.home.join("x/y/f")), 0o666);
    // Set-id bits never go into a user's home.
    dir.write_file_atomic("g", b"", 0o4755, None).unwrap();
    assert_eq!(mode_of(&s.home.join("x/y/g")), 0o755);
    let meta = dir.metadata("g").unwrap().unwrap();
    assert_eq!((meta.kind, meta.mode, meta.len), (FileKind::File, 0o755, 0));
}

#[test]
fn what_root_creates_belongs_to_the_homes_owner() {
    if !as_root() {
        return;
    }
    let s = scene();
    std::os::unix::fs::chown(&s.home, Some(4242), Some(4242)).unwrap();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let owner = Owner::of_dir(&home).unwrap();
    assert_eq!(
        owner,
        Owner {
            uid: 4242,
            gid: 4242
        }
    );
    let create = Create {
        mode: 0o700,
        owner: Some(owner),
    };
    let state = home
        .open_dir(".local/state/devicetrust", Some(create))
        .unwrap();
    let identity = state.open_dir("identity", Some(create)).unwrap();
    state
        .write_file_atomic("state.json", b"{}", 0o600, Some(owner))
        .unwrap();
    identity
        .write_file_atomic("CURRENT", b"id-1", 0o600, Some(owner))
        .unwrap();
    let lock = state.try_lock_file("lock", Some(owner)).unwrap();
    assert!(lock.is_some());
    for rel in [
        ".local",
        ".local/state",
        ".local/state/devicetrust",
        ".local/state/devicetrust/identity",
        ".local/state/devicetrust/identity/CURRENT",
        ".local/state/devicetrust/state.json",
        ".local/state/devicetrust/lock",
    ] {
        let meta = std::fs::symlink_metadata(s.home.join(rel)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4242), "{rel}");
    }
    assert_eq!(
        mode_of(&s.home.join(".local/state/devicetrust/lock")),
        0o600
    );
}

#[test]
fn read_capped_refuses_devices_and_fifos_at_once() {
    let err = read_capped("/dev/zero", SECRET_MAX, "the org token file").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the org token file /dev/zero is a character device, not a regular file"
    );
    let s = scene();
    let fifo = s.home.join("fifo");
    mkfifo(&fifo);
    // Without O_NONBLOCK the open waits for a writer forever: read on another thread, and
    // after a generous deadline play the writer to release it and fail.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_capped(&fifo, SECRET_MAX, "the SCEP challenge file"));
        })
    };
    let result = rx.recv_timeout(std::time::Duration::from_secs(20));
    if result.is_err() {
        let _writer = std::fs::OpenOptions::new().write(true).open(&fifo);
        let _ = reader.join();
        panic!("read_capped hung on a FIFO");
    }
    let err = result.unwrap().unwrap_err();
    assert!(
        matches!(&err, SecureFsError::NotRegular { kind: "a FIFO", .. }),
        "{err}"
    );
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let err = home.read_file("fifo", DOCUMENT_MAX).unwrap_err();
    assert!(
        matches!(&err, SecureFsError::NotRegular { kind: "a FIFO", .. }),
        "{err}"
    );
}

#[test]
fn reads_stop_at_the_cap() {
    let s = scene();
    let at_cap = s.home.join("at-cap");
    let over = s.home.join("over");
    std::fs::write(&at_cap, vec![b'x'; 4096]).unwrap();
    std::fs::write(&over, vec![b'x'; 4097]).unwrap();
    assert_eq!(
        read_capped(&at_cap, SECRET_MAX, "the org token file")
            .unwrap()
            .len(),
        4096
    );
    let err = read_capped(&over, SECRET_MAX, "the org token file").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the org token file {} is larger than 4096 bytes",
            over.display()
        )
    );
    // The admin's links are followed.
    symlink(&at_cap, s.home.join("link")).unwrap();
    assert_eq!(
        read_capped(s.home.join("link"), 4096, "the CA file")
            .unwrap()
            .len(),
        4096
    );

    let home = SecureDir::open_trusted(&s.home).unwrap();
    assert_eq!(home.read_file("at-cap", 4096).unwrap().unwrap().len(), 4096);
    assert!(matches!(
        home.read_file("over", 4096),
        Err(SecureFsError::TooLarge { max: 4096, .. })
    ));
    assert!(home.read_file("absent", 4096).unwrap().is_none());
}

#[test]
fn a_document_is_read_up_to_one_mebibyte_and_a_secret_up_to_four_kibibytes() {
    // The caps the docs state (docs/reliability.md): a configuration or CA bundle of 1 MiB is
    // read, one byte more is refused; likewise 4 KiB for a secret.
    let s = scene();
    for (cap, size) in [(DOCUMENT_MAX, 1_048_576), (SECRET_MAX, 4096)] {
        let at_cap = s.home.join(format!("at-{size}"));
        let over = s.home.join(format!("over-{size}"));
        std::fs::write(&at_cap, vec![b'x'; size]).unwrap();
        std::fs::write(&over, vec![b'x'; size + 1]).unwrap();
        assert_eq!(
            read_capped(&at_cap, cap, "the CA file").unwrap().len(),
            size
        );
        let err = read_capped(&over, cap, "the CA file").unwrap_err();
        assert!(
            err.to_string()
                .ends_with(&format!("is larger than {size} bytes")),
            "{err}"
        );
    }
}

/// A reader that plays back a script: each step an error of that kind, or those bytes.
struct Scripted(std::collections::VecDeque<Result<&'static [u8], std::io::ErrorKind>>);

impl std::io::Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.pop_front() {
            None => Ok(0),
            Some(Err(kind)) => Err(kind.into()),
            Some(Ok(bytes)) => {
                buf[..bytes.len()].copy_from_slice(bytes);
                Ok(bytes.len())
            }
        }
    }
}

#[test]
fn a_read_interrupted_by_a_signal_goes_on_and_any_other_error_stops_it() {
    use std::io::ErrorKind::{Interrupted, Other};
    let mut interrupted = Scripted([Ok(&b"to"[..]), Err(Interrupted), Ok(b"ken")].into());
    let read = read_bounded(&mut interrupted, SECRET_MAX, 0)
        .unwrap()
        .unwrap();
    assert_eq!(read.as_slice(), b"token");
    let mut failing = Scripted([Ok(&b"to"[..]), Err(Other), Ok(b"ken")].into());
    let err = read_bounded(&mut failing, SECRET_MAX, 0).unwrap_err();
    assert_eq!(err.kind(), Other);
}

#[test]
fn an_endless_stream_is_cut_at_the_cap() {
    // Standard input (`--org-token-file - < /dev/zero`) has no size to check first.
    assert!(read_bounded(&mut std::io::repeat(0), SECRET_MAX, 0)
        .unwrap()
        .is_none());
    // Past the first buffer: the growth path keeps the cap too.
    let exact = vec![7u8; 20_000];
    let read = read_bounded(&mut exact.as_slice(), 20_000, 0)
        .unwrap()
        .unwrap();
    assert_eq!(*read, exact);
    let over = vec![7u8; 20_001];
    assert!(read_bounded(&mut over.as_slice(), 20_000, 0)
        .unwrap()
        .is_none());
    assert!(read_bounded(&mut [].as_slice(), 0, 0)
        .unwrap()
        .unwrap()
        .is_empty());
}

#[test]
fn remove_tree_unlinks_links_and_spares_their_targets() {
    let s = scene();
    let tree = s.home.join("identity");
    std::fs::create_dir_all(tree.join("id-1/deeper")).unwrap();
    std::fs::write(tree.join("CURRENT"), b"id-1").unwrap();
    std::fs::write(tree.join("id-1/key.pem"), b"key").unwrap();
    symlink(&s.victim, tree.join("id-1/to-victim")).unwrap();
    symlink(s.victim.join("keep"), tree.join("id-1/deeper/to-keep")).unwrap();
    mkfifo(&tree.join("fifo"));
    // A 0000 folder of the user's is no obstacle to root, nor to its owner in the tests.
    std::fs::set_permissions(
        tree.join("id-1/deeper"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    symlink(&s.victim, s.home.join("identity-link")).unwrap();
    let before = snapshot(&s.victim);

    let home = SecureDir::open_trusted(&s.home).unwrap();
    assert!(home.remove_tree("identity").unwrap());
    assert!(home.remove_tree("identity-link").unwrap());
    assert!(!s.home.join("identity").exists());
    assert!(std::fs::symlink_metadata(s.home.join("identity-link")).is_err());
    assert_eq!(snapshot(&s.victim), before);
    assert!(!home.remove_tree("identity").unwrap());
}

#[test]
fn remove_tree_gives_up_on_an_absurdly_deep_tree() {
    let s = scene();
    let mut deep = s.home.join("deep");
    for i in 0..=MAX_DEPTH {
        deep.push(i.to_string());
    }
    std::fs::create_dir_all(&deep).unwrap();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let err = home.remove_tree("deep").unwrap_err();
    assert!(matches!(err, SecureFsError::TooDeep { .. }), "{err}");
}

#[test]
fn only_plain_relative_names_are_accepted() {
    let s = scene();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    for rel in ["../victim", "a/../../victim", "/etc"] {
        let err = home.open_dir(rel, private()).unwrap_err();
        assert!(matches!(err, SecureFsError::BadName { .. }), "{rel}: {err}");
    }
    for name in ["", ".", "..", "a/b"] {
        let err = home.read_file(name, 10).unwrap_err();
        assert!(
            matches!(err, SecureFsError::BadName { .. }),
            "{name:?}: {err}"
        );
        let err = home.write_file_atomic(name, b"", 0o600, None).unwrap_err();
        assert!(
            matches!(err, SecureFsError::BadName { .. }),
            "{name:?}: {err}"
        );
    }
    assert!(home.entries().unwrap().is_empty(), "nothing was created");
    // `.` components are harmless, and an empty path is the directory itself.
    assert_eq!(home.open_dir("./", None).unwrap().path(), s.home);
}

#[test]
fn files_links_and_folders_are_handled_by_name_without_following() {
    let s = scene();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let wants = home.open_dir("timers.target.wants", private()).unwrap();
    let unit = Path::new("../devicetrust-renew.timer");
    assert_eq!(wants.read_link("devicetrust-renew.timer").unwrap(), None);
    wants
        .symlink_owned(unit, "devicetrust-renew.timer", None)
        .unwrap();
    assert_eq!(
        wants
            .read_link("devicetrust-renew.timer")
            .unwrap()
            .as_deref(),
        Some(unit)
    );
    home.write_file_atomic("plain", b"x", 0o644, None).unwrap();
    assert!(matches!(
        home.read_link("plain"),
        Err(SecureFsError::NotSymlink {
            kind: "a regular file",
            ..
        })
    ));

    symlink(&s.victim, s.home.join("to-victim")).unwrap();
    let kinds: Vec<_> = home
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.name.into_string().unwrap(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("plain".to_owned(), FileKind::File),
            ("timers.target.wants".to_owned(), FileKind::Dir),
            ("to-victim".to_owned(), FileKind::Symlink),
        ]
    );
    assert_eq!(
        home.metadata("to-victim").unwrap().unwrap().kind,
        FileKind::Symlink
    );
    assert_eq!(home.metadata("absent").unwrap(), None);

    let before = snapshot(&s.victim);
    assert!(matches!(
        home.remove_empty_dir("to-victim"),
        Err(SecureFsError::Symlink { .. })
    ));
    assert!(home.remove_file("to-victim").unwrap());
    assert!(!home.remove_file("to-victim").unwrap());
    assert_eq!(snapshot(&s.victim), before);

    assert!(matches!(
        home.remove_file("timers.target.wants"),
        Err(SecureFsError::IsDirectory { .. })
    ));
    assert!(matches!(
        home.open_dir("plain", None),
        Err(SecureFsError::NotDirectory {
            kind: "a regular file",
            ..
        })
    ));
    assert!(wants.remove_file("devicetrust-renew.timer").unwrap());
    assert!(home.remove_empty_dir("timers.target.wants").unwrap());
    assert!(!home.remove_empty_dir("timers.target.wants").unwrap());

    home.rename("plain", "renamed").unwrap();
    assert_eq!(*home.read_file("renamed", 10).unwrap().unwrap(), b"x");
    let err = home.open_dir("absent", None).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn the_run_lock_is_exclusive_and_never_a_link() {
    let s = scene();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let first = home.try_lock_file("lock", None).unwrap();
    assert!(first.is_some());
    assert!(home.try_lock_file("lock", None).unwrap().is_none());
    drop(first);
    assert!(home.try_lock_file("lock", None).unwrap().is_some());
    assert_eq!(mode_of(&s.home.join("lock")), 0o600);

    symlink(s.victim.join("nonexistent"), s.home.join("lock2")).unwrap();
    let err = home.try_lock_file("lock2", None).unwrap_err();
    assert!(matches!(err, SecureFsError::Symlink { .. }), "{err}");
    assert!(
        !s.victim.join("nonexistent").exists(),
        "nothing created through the link"
    );
}

#[test]
fn hard_linked_files_are_not_read() {
    let s = scene();
    // Where protected_hardlinks is off (macOS), a user can link a file they cannot read.
    std::fs::hard_link(s.victim.join("keep"), s.home.join("state.json")).unwrap();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let err = home.read_file("state.json", DOCUMENT_MAX).unwrap_err();
    assert!(matches!(err, SecureFsError::HardLinked { .. }), "{err}");
    let err = home.try_lock_file("state.json", None).unwrap_err();
    assert!(matches!(err, SecureFsError::HardLinked { .. }), "{err}");
    // Replacing it is fine: the name is replaced, the shared file is not written.
    home.write_file_atomic("state.json", b"{}", 0o600, None)
        .unwrap();
    assert_eq!(std::fs::read(s.victim.join("keep")).unwrap(), b"precious");
}

#[test]
fn messages_stay_on_one_line_whatever_the_names() {
    let s = scene();
    let name = "evil\nERROR: forged";
    symlink(&s.victim, s.home.join(name)).unwrap();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let err = home.open_dir(name, None).unwrap_err();
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("evil\\nERROR: forged"), "{message}");
}

#[test]
fn a_place_walks_below_its_base_without_following_and_creates_for_the_bases_owner() {
    let s = scene();
    let place = Place::new(&s.home, ".local/state/devicetrust");
    assert!(place.open().unwrap().is_none(), "nothing there yet");
    assert_eq!(place.path(), s.home.join(".local/state/devicetrust"));
    let dir = place.create(0o700).unwrap();
    assert_eq!(dir.path(), place.path());
    assert_eq!(mode_of(&s.home.join(".local")), 0o700);
    assert_eq!(mode_of(&place.path()), 0o700);
    assert!(place.open().unwrap().is_some());
    let meta = std::fs::metadata(s.home.join(".local/state/devicetrust")).unwrap();
    let home = std::fs::metadata(&s.home).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (home.uid(), home.gid()));
    assert_eq!(
        place.owner().unwrap(),
        Owner {
            uid: home.uid(),
            gid: home.gid()
        }
    );

    // A link anywhere below the base is refused, for opening and creating alike.
    std::fs::remove_dir(place.path()).unwrap();
    symlink(&s.victim, place.path()).unwrap();
    let before = snapshot(&s.victim);
    for result in [
        place.open().map(|_| ()),
        place.create(0o700).map(|_| ()),
        place.join("identity").create(0o700).map(|_| ()),
        place.remove_if_empty().map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, SecureFsError::Symlink { path } if *path == place.path()),
            "{err}"
        );
    }
    assert_eq!(snapshot(&s.victim), before);
}

#[test]
fn a_place_makes_a_missing_base_only_when_allowed() {
    let s = scene();
    let base = s.home.join("missing/home");
    let place = Place::new(&base, "state");
    assert!(place.open().unwrap().is_none());
    assert!(place.create(0o700).unwrap_err().is_not_found());
    assert!(!base.exists());
    let place = place.creating_base();
    place.create(0o700).unwrap();
    assert!(base.join("state").is_dir());
}

#[test]
fn a_base_that_is_not_a_folder_is_an_error_not_a_missing_place() {
    // A file where the home should be: "nothing enrolled here" would hide it, so it is said.
    let s = scene();
    let place = Place::new(s.victim.join("keep"), "state");
    let err = place.open().unwrap_err();
    assert!(!err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("keep"), "{err}");
}

#[test]
fn remove_if_empty_keeps_a_folder_with_something_in_it() {
    let s = scene();
    let place = Place::new(&s.home, "a/b");
    assert!(!place.remove_if_empty().unwrap(), "absent");
    let dir = place.create(0o700).unwrap();
    dir.write_file_atomic("theirs", b"x", 0o600, None).unwrap();
    assert!(!place.remove_if_empty().unwrap());
    dir.remove_file("theirs").unwrap();
    assert!(place.remove_if_empty().unwrap());
    assert!(!s.home.join("a/b").exists());
    assert!(s.home.join("a").is_dir(), "only the folder itself goes");
    assert!(
        !Place::new(&s.home, "").remove_if_empty().unwrap(),
        "never the base"
    );
    assert!(s.home.is_dir());
}

#[test]
fn a_folder_that_cannot_be_removed_is_an_error_not_a_folder_still_in_use() {
    // Root is refused nothing by permissions: this runs in the suite's second, unprivileged run.
    if super::running_as_root() {
        return;
    }
    let s = scene();
    let place = Place::new(&s.home, "a/b");
    place.create(0o700).unwrap();
    std::fs::set_permissions(s.home.join("a"), std::fs::Permissions::from_mode(0o500)).unwrap();
    let result = place.remove_if_empty();
    std::fs::set_permissions(s.home.join("a"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(&err, SecureFsError::Io { source, .. }
            if source.raw_os_error() == Some(libc::EACCES)),
        "{err:?}"
    );
    assert!(s.home.join("a/b").is_dir());
}

#[test]
fn create_dir_makes_a_new_folder_only() {
    let s = scene();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let fresh = home.create_dir("fresh", 0o700, None).unwrap();
    fresh.write_file_atomic("f", b"1", 0o600, None).unwrap();
    assert_eq!(mode_of(&s.home.join("fresh")), 0o700);
    let err = home.create_dir("fresh", 0o700, None).unwrap_err();
    assert!(!err.is_not_found(), "{err}");
    symlink(&s.victim, s.home.join("planted")).unwrap();
    let before = snapshot(&s.victim);
    assert!(home.create_dir("planted", 0o700, None).is_err());
    assert_eq!(snapshot(&s.victim), before);
}

#[test]
fn temporary_names_are_recognised_for_sweeping() {
    let s = scene();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    take_temps();
    home.write_file_atomic("CURRENT", b"x", 0o600, None)
        .unwrap();
    let temp = take_temps().pop().unwrap();
    assert_eq!(temp_target(&temp), Some(OsStr::new("CURRENT")));
    let hex32 = "0123456789abcdef0123456789abcdef";
    for (name, want) in [
        (
            format!("..devicetrust-store.tmp-{hex32}"),
            Some(".devicetrust-store"),
        ),
        (format!(".state.json.tmp-{hex32}"), Some("state.json")),
        (".state.json.tmp-4242".to_owned(), None),
        (format!(".tmp-{hex32}"), None),
        (format!("CURRENT.tmp-{hex32}"), None),
        (format!(".x.tmp-{}", hex32.to_uppercase()), None),
        (format!(".x.tmp-{hex32}0"), None),
    ] {
        assert_eq!(
            temp_target(OsStr::new(&name)),
            want.map(OsStr::new),
            "{name}"
        );
    }
}

#[test]
fn a_planted_link_is_found_through_wrapping_errors() {
    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] SecureFsError);
    #[derive(Debug, thiserror::Error)]
    enum Transparent {
        #[error(transparent)]
        Outer(#[from] Outer),
    }
    let s = scene();
    symlink(&s.victim, s.home.join("link")).unwrap();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let planted = home.open_dir("link", None).unwrap_err();
    let wrapped = Transparent::Outer(Outer(planted));
    assert!(matches!(
        planted_in(&wrapped),
        Some(SecureFsError::Symlink { .. })
    ));
    let missing = home.open_dir("absent", None).unwrap_err();
    assert!(planted_in(&Outer(missing)).is_none());
}

#[test]
fn a_private_folder_swapped_for_the_users_own_is_not_used() {
    if !as_root() {
        return;
    }
    let s = scene();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let owner = Owner {
        uid: 4242,
        gid: 4343,
    };
    // The user renames root's fresh folder away and puts a folder of their own in its place.
    BETWEEN_MKDIR_AND_OPEN.with(|b| {
        *b.borrow_mut() = Some(Box::new(|private: &Path| {
            let away = private.with_file_name("roots-folder-moved");
            std::fs::rename(private, away).unwrap();
            std::fs::create_dir(private).unwrap();
            std::os::unix::fs::chown(private, Some(4242), Some(4242)).unwrap();
            std::fs::set_permissions(private, std::fs::Permissions::from_mode(0o700)).unwrap();
        }))
    });
    let err = home
        .symlink_owned("new-target", "link", Some(owner))
        .unwrap_err();
    assert!(
        matches!(&err, SecureFsError::Io { source, .. }
            if source.raw_os_error() == Some(libc::EPERM)),
        "{err:?}"
    );
    // No link was made, in the home or in the user's folder (which, empty, is gone).
    let mut names: Vec<_> = std::fs::read_dir(&s.home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["roots-folder-moved"]);
}

#[test]
fn a_link_made_as_root_belongs_to_the_owner_given_and_replaces_the_old_one() {
    if !as_root() {
        return;
    }
    let s = scene();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let owner = Owner {
        uid: 4242,
        gid: 4343,
    };
    let link = s.home.join("link");
    // An older link of root's, to be replaced by one of the owner's.
    symlink("old-target", &link).unwrap();
    home.symlink_owned("new-target", "link", Some(owner))
        .unwrap();
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink());
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("new-target"));
    // Nothing else is left: the private folder it was made in is gone.
    let names: Vec<_> = std::fs::read_dir(&s.home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["link"]);
}

#[test]
fn a_trusted_directory_must_be_one_and_no_handle_passes_to_a_child_program() {
    let s = scene();
    // A file where the admin named a folder is refused when opened, not on first use.
    let err = SecureDir::open_trusted(s.victim.join("keep")).unwrap_err();
    assert!(
        matches!(&err, SecureFsError::Io { source, .. }
            if source.raw_os_error() == Some(libc::ENOTDIR)),
        "{err:?}"
    );
    // Handles into a home are close-on-exec: `security`, `launchctl` or `certutil`, started
    // while one is open, never inherit a way into the user's folders.
    std::fs::create_dir(s.home.join("sub")).unwrap();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    let sub = home.open_dir("sub", None).unwrap();
    for dir in [&home, &sub] {
        let flags = rustix::io::fcntl_getfd(&dir.fd).unwrap();
        assert!(
            flags.contains(rustix::io::FdFlags::CLOEXEC),
            "{}",
            dir.path().display()
        );
    }
}

#[test]
fn a_write_never_opens_what_is_planted_at_its_temporary_name() {
    // Someone who guessed the random name put a link to the victim's file there, and a file of
    // their own at the next one: both are passed over (`O_EXCL`, `O_NOFOLLOW`), neither is
    // written through or changed, and the write lands under a fresh name.
    let s = scene();
    let link_name = OsString::from(".state.json.tmp-planted-link");
    let file_name = OsString::from(".state.json.tmp-planted-file");
    symlink(s.victim.join("keep"), s.home.join(&link_name)).unwrap();
    std::fs::write(s.home.join(&file_name), b"theirs").unwrap();
    PLANTED.with(|p| *p.borrow_mut() = vec![file_name.clone(), link_name.clone()]);
    let home = SecureDir::open_trusted(&s.home).unwrap();
    home.write_file_atomic("state.json", b"ours", 0o644, None)
        .unwrap();
    assert_eq!(std::fs::read(s.home.join("state.json")).unwrap(), b"ours");
    assert_eq!(std::fs::read(s.victim.join("keep")).unwrap(), b"precious");
    assert_eq!(mode_of(&s.victim.join("keep")), 0o640);
    assert_eq!(std::fs::read(s.home.join(&file_name)).unwrap(), b"theirs");
    assert!(std::fs::symlink_metadata(s.home.join(&link_name))
        .unwrap()
        .file_type()
        .is_symlink());
    let temps = take_temps();
    assert_eq!(temps.len(), 1, "{temps:?}");
    assert!(temps[0] != link_name && temps[0] != file_name, "{temps:?}");
}

#[test]
fn a_lock_file_handle_passes_to_no_child_program() {
    // A child that inherited the lock's descriptor would hold the lock after the agent exits.
    let s = scene();
    let home = SecureDir::open_trusted(&s.home).unwrap();
    for _ in 0..2 {
        // Created, then (the second time) opened as it is.
        let lock = home.try_lock_file("lock", None).unwrap().unwrap();
        let flags = rustix::io::fcntl_getfd(&lock).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
}

#[test]
fn root_alone_and_private_to_root_by_owner_and_mode() {
    let meta = |uid, mode| Metadata {
        kind: FileKind::Dir,
        mode,
        uid,
        gid: 0,
        len: 0,
    };
    // (uid, mode, root's alone, private to root)
    let cases = [
        (0, 0o700, true, true),
        (0, 0o755, true, false),
        (0, 0o750, true, false),
        (0, 0o720, false, false),
        (0, 0o702, false, false),
        (501, 0o700, false, false),
        (501, 0o777, false, false),
    ];
    for (uid, mode, alone, private) in cases {
        let m = meta(uid, mode);
        assert_eq!(m.is_roots_alone(), alone, "{uid} {mode:o}");
        assert_eq!(m.is_private_to_root(), private, "{uid} {mode:o}");
    }
}
