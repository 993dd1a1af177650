//! The fault-injection filesystem itself, through a real FUSE mount: what a
//! power cut keeps and what it throws away. In a `power_loss` module, so
//! that `cargo test --workspace power_loss` runs these with the power-loss
//! tests that rely on them.

mod power_loss {
    use std::fs::{File, OpenOptions};
    use std::io::Write;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    use std::path::Path;

    use faultfs::{Cut, FaultFs};

    fn mount() -> (tempfile::TempDir, FaultFs) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fs = FaultFs::mount(tmp.path().join("backing"), tmp.path().join("mnt"))
            .expect("mount faultfs (needs /dev/fuse; scripts/test installs Debian's fuse3)");
        (tmp, fs)
    }

    fn sync_dir(dir: &Path) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .unwrap_or_else(|e| panic!("fsync directory {}: {e}", dir.display()));
    }

    /// Writes `data` to a new file `name` in `dir`, fsyncs the file and
    /// optionally the directory.
    fn write_file(dir: &Path, name: &str, data: &[u8], sync_file: bool, sync_parent: bool) {
        let mut f = File::create(dir.join(name)).expect("create");
        f.write_all(data).expect("write");
        if sync_file {
            f.sync_all().expect("fsync");
        }
        drop(f);
        if sync_parent {
            sync_dir(dir);
        }
    }

    fn read(path: &Path) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }

    #[test]
    fn a_file_written_without_fsync_disappears_at_a_cut() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        write_file(&root, "unsynced", b"hello", false, false);
        assert_eq!(read(&root.join("unsynced")).as_deref(), Some(&b"hello"[..]));
        let report = fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert!(!root.join("unsynced").exists());
        assert_eq!(report.entries_reverted, 1, "{report:?}");
    }

    #[test]
    fn a_new_file_needs_both_its_fsync_and_its_directory_fsync() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        // Name synced, data not: an empty file.
        write_file(&root, "name-only", b"abc", false, true);
        // Both: survives.
        write_file(&root, "both", b"abc", true, true);
        // Data synced, name not (the directory is not synced after it): gone.
        write_file(&root, "data-only", b"abc", true, false);
        fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert!(!root.join("data-only").exists());
        assert_eq!(read(&root.join("name-only")).as_deref(), Some(&b""[..]));
        assert_eq!(read(&root.join("both")).as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn fdatasync_keeps_data_and_size_and_later_writes_are_undone() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        let path = root.join("log");
        let f = File::create(&path).expect("create");
        let first: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all_at(&first, 0).expect("write");
        f.sync_data().expect("fdatasync");
        sync_dir(&root);
        // Overwrite inside the synced part, append past it, never sync.
        f.write_all_at(b"XXXX", 4094)
            .expect("overwrite across a page boundary");
        f.write_all_at(&[7u8; 9000], 10_000).expect("append");
        drop(f);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 19_000);
        let report = fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert_eq!(read(&path), Some(first), "{report:?}");
        assert_eq!(report.files_with_unsynced_data, 1);
    }

    #[test]
    fn an_unsynced_truncation_is_undone() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        let data = vec![5u8; 20_000];
        write_file(&root, "f", &data, true, true);
        let f = OpenOptions::new().write(true).open(root.join("f")).unwrap();
        f.set_len(100).expect("truncate");
        drop(f);
        fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert_eq!(read(&root.join("f")), Some(data));
    }

    #[test]
    fn renames_and_unlinks_are_durable_only_with_their_directory_fsync() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        write_file(&root, "a", b"A", true, false);
        write_file(&root, "b", b"B", true, false);
        write_file(&root, "c", b"C", true, false);
        sync_dir(&root);

        // Unsynced: reverted.
        std::fs::rename(root.join("a"), root.join("a2")).unwrap();
        std::fs::remove_file(root.join("b")).unwrap();
        fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert_eq!(read(&root.join("a")).as_deref(), Some(&b"A"[..]));
        assert!(!root.join("a2").exists());
        assert_eq!(read(&root.join("b")).as_deref(), Some(&b"B"[..]));

        // Synced: kept. A rename over an existing file replaces it.
        std::fs::rename(root.join("a"), root.join("c")).unwrap();
        std::fs::remove_file(root.join("b")).unwrap();
        sync_dir(&root);
        fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert!(!root.join("a").exists());
        assert!(!root.join("b").exists());
        assert_eq!(read(&root.join("c")).as_deref(), Some(&b"A"[..]));
    }

    #[test]
    fn the_atomic_replace_pattern_survives_every_cut_point() {
        // write tmp, fsync, rename over the target, fsync dir: after a cut the
        // target holds the old or the new content, never anything else.
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        write_file(&root, "marker", b"old", true, true);
        for step in 0..4 {
            let tmp = root.join("marker.tmp");
            let mut f = File::create(&tmp).unwrap();
            f.write_all(b"new").unwrap();
            if step >= 1 {
                f.sync_all().unwrap();
            }
            drop(f);
            if step >= 2 {
                std::fs::rename(&tmp, root.join("marker")).unwrap();
            }
            if step >= 3 {
                sync_dir(&root);
            }
            fs.power_cut(Cut::DropUnsynced).expect("cut");
            let got = read(&root.join("marker"));
            let want: &[u8] = if step >= 3 { b"new" } else { b"old" };
            assert_eq!(got.as_deref(), Some(want), "step {step}");
            // Start the next step from the old content again.
            if step >= 3 {
                write_file(&root, "marker", b"old", true, true);
            }
            let _ = std::fs::remove_file(&tmp);
            sync_dir(&root);
        }
    }

    #[test]
    fn subdirectories_need_their_parent_synced_and_their_own_entries_synced() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        let sub = root.join("sub");
        std::fs::create_dir(&sub).unwrap();
        write_file(&sub, "f", b"x", true, true);
        // "sub" itself was never synced in the root: all of it is gone.
        fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert!(!sub.exists());

        std::fs::create_dir(&sub).unwrap();
        sync_dir(&root);
        write_file(&sub, "f", b"x", true, false);
        fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert!(sub.is_dir());
        assert!(!sub.join("f").exists(), "f's entry in sub was not synced");

        write_file(&sub, "f", b"x", true, true);
        // Removing the whole directory, unsynced, comes back.
        std::fs::remove_file(sub.join("f")).unwrap();
        std::fs::remove_dir(&sub).unwrap();
        fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert_eq!(read(&sub.join("f")).as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn an_unlinked_file_stays_readable_through_an_open_handle() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        write_file(&root, "f", b"still here", true, true);
        let f = File::open(root.join("f")).unwrap();
        std::fs::remove_file(root.join("f")).unwrap();
        sync_dir(&root);
        let mut buf = [0u8; 10];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"still here");
        drop(f);
        fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert!(!root.join("f").exists());
    }

    #[test]
    fn o_dsync_writes_are_durable_at_once() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .custom_flags(libc::O_DSYNC)
            .open(root.join("f"))
            .unwrap();
        sync_dir(&root);
        f.write_all(b"durable").unwrap();
        drop(f);
        fs.power_cut(Cut::DropUnsynced).expect("cut");
        assert_eq!(read(&root.join("f")).as_deref(), Some(&b"durable"[..]));
    }

    #[test]
    fn reordered_cuts_keep_all_synced_data_and_some_unsynced_pages() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        let synced: Vec<u8> = (0..8192u32).map(|i| (i % 200) as u8 + 1).collect();
        let mut kept_any = false;
        let mut lost_any = false;
        let mut torn_or_zero = false;
        for seed in 0..20 {
            write_file(&root, "f", &synced, true, true);
            let f = OpenOptions::new().write(true).open(root.join("f")).unwrap();
            // Four unsynced pages past the synced end, one overwrite inside.
            f.write_all_at(&[0xEE; 4 * 4096], 8192).unwrap();
            f.write_all_at(&[0xDD; 100], 10).unwrap();
            drop(f);
            let report = fs.power_cut(Cut::Reorder { seed }).expect("cut");
            let got = read(&root.join("f")).expect("the synced file survives");
            assert!(
                got.len() >= 8192 && got.len() <= 8192 + 4 * 4096,
                "{}",
                got.len()
            );
            for (i, b) in got.iter().enumerate() {
                let ok = match i {
                    10..110 => *b == 0xDD || *b == synced[i],
                    0..8192 => *b == synced[i],
                    _ => *b == 0xEE || *b == 0,
                };
                assert!(ok, "seed {seed}: byte {i} is {b:#x}");
            }
            kept_any |= report.pages_kept > 0;
            lost_any |= report.pages_lost > 0;
            torn_or_zero |= got[8192..].contains(&0);
            std::fs::remove_file(root.join("f")).unwrap();
            sync_dir(&root);
        }
        assert!(
            kept_any && lost_any && torn_or_zero,
            "20 seeds should show every outcome"
        );
    }

    #[test]
    fn reordered_cuts_keep_a_prefix_of_the_directory_changes() {
        let (_tmp, mut fs) = mount();
        let root = fs.path().to_path_buf();
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..30 {
            // Created in this order, none synced: a survivor implies all
            // before it survived.
            for name in ["1", "2", "3"] {
                write_file(&root, name, b"x", true, false);
            }
            fs.power_cut(Cut::Reorder { seed }).expect("cut");
            let present: Vec<bool> = ["1", "2", "3"]
                .iter()
                .map(|n| root.join(n).exists())
                .collect();
            let n = present.iter().take_while(|p| **p).count();
            assert!(
                present[n..].iter().all(|p| !p),
                "seed {seed}: {present:?} is not a prefix"
            );
            outcomes.insert(n);
            for name in ["1", "2", "3"] {
                let _ = std::fs::remove_file(root.join(name));
            }
            sync_dir(&root);
        }
        assert!(outcomes.len() >= 3, "outcomes {outcomes:?}");
    }

    #[test]
    fn the_mount_counts_syncs() {
        let (_tmp, fs) = mount();
        let root = fs.path().to_path_buf();
        write_file(&root, "f", b"x", true, true);
        let stats = fs.stats();
        assert!(
            stats.writes >= 1 && stats.file_syncs >= 1 && stats.dir_syncs >= 1,
            "{stats:?}"
        );
        fs.unmount().expect("unmount");
    }
}
