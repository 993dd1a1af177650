//! The power cut: rewrites the (unmounted) backing directory into what a
//! disk would hold after losing power — every file's content rolled back to
//! its last sync, the tree rebuilt from each directory's entries as of its
//! last sync — or, for [`Cut::Reorder`], that plus a random part of what
//! was written since.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::model::{Kind, Node, State, HIDDEN, PAGE, ROOT};

/// Size of a sector: the unit a torn page write is cut at.
const SECTOR: u64 = 512;

/// How much of what was not synced a cut keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Nothing: exactly the synced state survives.
    DropUnsynced,
    /// A random part, drawn from `seed`: each unsynced page of a file is
    /// kept, torn at a sector boundary (a prefix of it kept), or lost; the
    /// file is as long as its synced size or its last kept page, whichever
    /// is longer, with zeros where pages in between were lost. A random
    /// prefix of the unsynced directory changes (in the order they were
    /// made) survives besides the synced entries.
    Reorder {
        /// Seed of the choices.
        seed: u64,
    },
}

/// What a cut threw away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files with unsynced writes.
    pub files_with_unsynced_data: usize,
    /// Unsynced pages rolled back (wholly or partly).
    pub pages_lost: usize,
    /// Unsynced pages that survived whole or torn ([`Cut::Reorder`]).
    pub pages_kept: usize,
    /// Unsynced directory changes (one per side of a rename) reverted.
    pub entries_reverted: usize,
    /// Unsynced directory changes that survived ([`Cut::Reorder`]).
    pub entries_kept: usize,
}

/// Rolls the backing directory of `state` back and reports what was lost.
pub(crate) fn apply(state: State, cut: Cut) -> io::Result<CutReport> {
    let mut rng = match cut {
        Cut::DropUnsynced => None,
        Cut::Reorder { seed } => Some(fastrand::Rng::with_seed(seed)),
    };
    let mut report = CutReport::default();
    let tree = durable_tree(&state, rng.as_mut(), &mut report);

    let stage = state.backing.join(HIDDEN).join("stage");
    std::fs::create_dir_all(&stage)?;
    let wanted: HashSet<u64> = tree.iter().map(|(_, ino, _)| *ino).collect();
    for (&ino, node) in &state.nodes {
        if node.kind != Kind::File || node.gone {
            continue;
        }
        let staged = stage.join(ino.to_string());
        std::fs::rename(state.path(ino)?, &staged)?;
        if wanted.contains(&ino) {
            roll_back(&staged, node, rng.as_mut(), &mut report)?;
        }
    }
    for entry in std::fs::read_dir(&state.backing)? {
        let entry = entry?;
        if entry.file_name() == HIDDEN {
            continue;
        }
        std::fs::remove_dir_all(entry.path())?;
    }
    std::fs::remove_dir_all(state.backing.join(HIDDEN).join("trash"))?;
    let mut placed: HashMap<u64, PathBuf> = HashMap::new();
    for (path, ino, kind) in &tree {
        let to = state.backing.join(path);
        match kind {
            Kind::Dir => std::fs::create_dir(&to)?,
            Kind::File => match placed.get(ino) {
                // A file durable under two names (a rename whose two
                // directories were synced at different times): two files.
                Some(first) => {
                    std::fs::copy(first, &to)?;
                }
                None => {
                    std::fs::rename(stage.join(ino.to_string()), &to)?;
                    placed.insert(*ino, to);
                }
            },
        }
    }
    std::fs::remove_dir_all(state.backing.join(HIDDEN))?;
    Ok(report)
}

/// The tree that survives: (path below the root, inode, kind), parents
/// before their entries.
fn durable_tree(
    state: &State,
    rng: Option<&mut fastrand::Rng>,
    report: &mut CutReport,
) -> Vec<(PathBuf, u64, Kind)> {
    let mut entries: HashMap<u64, BTreeMap<OsString, u64>> = state
        .nodes
        .iter()
        .filter(|(_, n)| n.kind == Kind::Dir)
        .map(|(&ino, n)| (ino, n.durable_children.clone()))
        .collect();
    let pending: Vec<_> = state
        .journal
        .iter()
        .filter(|op| {
            state
                .nodes
                .get(&op.dir)
                .is_some_and(|d| op.seq > d.synced_seq)
        })
        .collect();
    let last_seq = pending.iter().map(|op| op.seq).max().unwrap_or(0);
    let first_seq = pending.iter().map(|op| op.seq).min().unwrap_or(0);
    let keep_through = match rng {
        Some(rng) if last_seq > 0 => rng.u64(first_seq - 1..=last_seq),
        _ => 0,
    };
    for op in pending {
        if op.seq > keep_through {
            report.entries_reverted += 1;
            continue;
        }
        let gone = op
            .target
            .is_some_and(|t| state.nodes.get(&t).is_none_or(|n| n.gone));
        let Some(dir) = entries.get_mut(&op.dir) else {
            continue;
        };
        report.entries_kept += 1;
        match op.target {
            Some(t) if !gone => {
                dir.insert(op.name.clone(), t);
            }
            _ => {
                dir.remove(&op.name);
            }
        }
    }
    let mut tree = Vec::new();
    let mut seen = HashSet::from([ROOT]);
    let mut queue = vec![(PathBuf::new(), ROOT)];
    while let Some((path, dir)) = queue.pop() {
        for (name, &ino) in entries.get(&dir).into_iter().flatten() {
            let Some(node) = state.nodes.get(&ino).filter(|n| !n.gone) else {
                continue;
            };
            let child = path.join(name);
            if node.kind == Kind::Dir {
                // A directory durable in two places keeps the first.
                if !seen.insert(ino) {
                    continue;
                }
                queue.push((child.clone(), ino));
            }
            tree.push((child, ino, node.kind));
        }
    }
    tree
}

/// Rolls one file (staged at `path`) back to its synced content, keeping
/// some unsynced pages when `rng` is given.
fn roll_back(
    path: &Path,
    node: &Node,
    mut rng: Option<&mut fastrand::Rng>,
    report: &mut CutReport,
) -> io::Result<()> {
    if node.dirty.is_empty() && node.len == node.durable_len {
        return Ok(());
    }
    report.files_with_unsynced_data += 1;
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let sectors = PAGE / SECTOR;
    // Per dirty page, how many leading sectors of the new content survive.
    let mut kept: Vec<(u64, u64)> = Vec::with_capacity(node.dirty.len());
    let mut final_len = node.durable_len;
    for &page in &node.dirty {
        let start = page * PAGE;
        if start >= node.len.max(node.durable_len) {
            continue;
        }
        let k = match rng.as_deref_mut() {
            None => 0,
            Some(rng) => match rng.u8(..4) {
                0 | 1 => 0,
                2 => sectors,
                _ => rng.u64(1..sectors),
            },
        };
        if k > 0 {
            report.pages_kept += 1;
            final_len = final_len.max((start + k * SECTOR).min(node.len));
        }
        if k < sectors {
            report.pages_lost += 1;
        }
        kept.push((page, k));
    }
    for (page, k) in kept {
        if k == sectors {
            continue;
        }
        let start = page * PAGE;
        let from = start + k * SECTOR;
        let end = start + PAGE;
        // Below the synced size the old bytes come back.
        if let Some(pre) = node.undo.get(&page) {
            let pre_end = start + pre.len() as u64;
            if from < pre_end {
                file.write_all_at(&pre[(from - start) as usize..], from)?;
            }
        }
        // Above it, lost bytes read as zeros up to the surviving length.
        let zero_from = from.max(node.durable_len);
        let zero_to = end.min(final_len);
        if zero_from < zero_to {
            file.write_all_at(&vec![0u8; (zero_to - zero_from) as usize], zero_from)?;
        }
    }
    file.set_len(final_len)?;
    Ok(())
}
