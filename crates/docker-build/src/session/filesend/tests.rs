//! The fsutil receiver's protocol (sans-IO) and the writer's path safety.

use std::os::unix::fs::MetadataExt as _;

use super::*;

fn stat(path: &str, mode: u32) -> Packet {
    Packet {
        r#type: PacketType::PacketStat.into(),
        stat: Some(Stat {
            path: path.into(),
            mode,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn link(path: &str, mode: u32, target: &str) -> Packet {
    let mut p = stat(path, mode);
    p.stat.as_mut().unwrap().linkname = target.into();
    p
}

fn end_of_listing() -> Packet {
    packet(PacketType::PacketStat)
}

fn data(id: u32, bytes: &'static [u8]) -> Packet {
    Packet {
        r#type: PacketType::PacketData.into(),
        id,
        data: Bytes::from_static(bytes),
        ..Default::default()
    }
}

fn kind(p: &Packet) -> PacketType {
    PacketType::try_from(p.r#type).unwrap()
}

/// The packets a receiver sends for `actions`.
fn sent(actions: &[Action]) -> Vec<(PacketType, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p) => Some((kind(p), p.id)),
            _ => None,
        })
        .collect()
}

const DIR: u32 = MODE_DIR | 0o755;
const FILE: u32 = 0o644;
const EXEC: u32 = 0o755;
const SYMLINK: u32 = MODE_SYMLINK | 0o777;

#[test]
fn every_file_is_requested_by_its_number_and_fin_follows_the_last_data() {
    let mut r = Receiver::default();
    // Entry numbers count every STAT, directories and links included.
    assert_eq!(sent(&r.packet(stat("bin", DIR)).unwrap()), []);
    assert_eq!(
        sent(&r.packet(stat("bin/app", EXEC)).unwrap()),
        [(PacketType::PacketReq, 1)]
    );
    assert_eq!(sent(&r.packet(link("bin/sh", SYMLINK, "app")).unwrap()), []);
    assert_eq!(
        sent(&r.packet(stat("empty", FILE)).unwrap()),
        [(PacketType::PacketReq, 3)]
    );
    // A hard link to an earlier file is linked, not requested.
    assert_eq!(sent(&r.packet(link("same", FILE, "empty")).unwrap()), []);
    // The listing ends; two files are still open.
    assert_eq!(r.packet(end_of_listing()).unwrap(), []);
    // Data of two files interleaves (fsutil sends with four workers).
    assert_eq!(
        r.packet(data(1, b"#!")).unwrap(),
        [Action::Write {
            id: 1,
            data: Bytes::from_static(b"#!")
        }]
    );
    assert_eq!(r.packet(data(3, b"")).unwrap(), [Action::Close { id: 3 }]);
    let last = r.packet(data(1, b"")).unwrap();
    assert_eq!(last[..2], [Action::Close { id: 1 }, Action::Finish]);
    assert_eq!(sent(&last), [(PacketType::PacketFin, 0)]);
    assert!(!r.is_done());
    // The exporter's FIN ends the transfer; nothing may follow.
    assert_eq!(r.packet(packet(PacketType::PacketFin)).unwrap(), []);
    assert!(r.is_done());
    let after = r.packet(data(1, b"x")).unwrap_err();
    assert_eq!(
        after.to_string(),
        "unexpected DATA packet from the exporter after the end of the transfer"
    );
}

#[test]
fn an_output_without_files_finishes_at_the_end_of_the_listing() {
    let mut r = Receiver::default();
    r.packet(stat("d", DIR)).unwrap();
    let actions = r.packet(end_of_listing()).unwrap();
    assert_eq!(actions[0], Action::Finish);
    assert_eq!(sent(&actions), [(PacketType::PacketFin, 0)]);
}

#[test]
fn packets_out_of_sequence_are_refused() {
    let cases: Vec<(Vec<Packet>, &str)> = vec![
        (
            vec![packet(PacketType::PacketFin)],
            "unexpected FIN packet from the exporter before the transfer was complete",
        ),
        (
            vec![stat("a", FILE), end_of_listing(), stat("b", FILE)],
            "unexpected STAT packet from the exporter after the end of the listing",
        ),
        (
            vec![end_of_listing(), end_of_listing()],
            "unexpected STAT packet from the exporter after the end of the listing",
        ),
        (
            vec![stat("a", FILE), data(7, b"x")],
            "the exporter sent data for entry 7, which was not requested",
        ),
        (
            vec![stat("a", FILE), data(0, b""), data(0, b"again")],
            "the exporter sent data for entry 0, which was not requested",
        ),
        (
            vec![packet(PacketType::PacketReq)],
            "unexpected REQ packet from the exporter (a receiver's packet)",
        ),
        (
            vec![Packet {
                r#type: PacketType::PacketErr.into(),
                data: Bytes::from_static(b"disk full"),
                ..Default::default()
            }],
            "the exporter failed: disk full",
        ),
        (
            vec![stat("dev", MODE_DEVICE | MODE_CHAR_DEVICE | 0o666)],
            r#"the output entry "dev" is a device, named pipe or socket, which is not written"#,
        ),
    ];
    for (packets, message) in cases {
        let mut r = Receiver::default();
        let error = packets
            .into_iter()
            .map(|p| r.packet(p))
            .find_map(Result::err)
            .unwrap_or_else(|| panic!("no error, expected {message}"));
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn paths_that_could_leave_the_destination_are_refused() {
    let cases: Vec<(Vec<Packet>, &str)> = vec![
        (
            vec![stat("../x", FILE)],
            r#"refusing the output entry "../x": the path has a `..` component"#,
        ),
        (
            vec![stat("a", DIR), stat("a/../../x", FILE)],
            r#"refusing the output entry "a/../../x": the path has a `..` component"#,
        ),
        (
            vec![stat("/etc/passwd", FILE)],
            r#"refusing the output entry "/etc/passwd": the path is absolute"#,
        ),
        (
            vec![stat("", FILE)],
            r#"refusing the output entry "": the path is empty"#,
        ),
        (
            vec![stat("a", DIR), stat("a//b", FILE)],
            r#"refusing the output entry "a//b": the path has an empty component"#,
        ),
        (
            vec![stat("./a", FILE)],
            r#"refusing the output entry "./a": the path has a `.` component"#,
        ),
        // A symlink, then a file below it: writing it would follow the link.
        (
            vec![link("etc", SYMLINK, "/etc"), stat("etc/passwd", FILE)],
            r#"refusing the output entry "etc/passwd": its parent "etc" is not a directory of the output"#,
        ),
        (
            vec![link("up", SYMLINK, ".."), stat("up/x", DIR)],
            r#"refusing the output entry "up/x": its parent "up" is not a directory of the output"#,
        ),
        (
            vec![stat("f", FILE), stat("f/x", FILE)],
            r#"refusing the output entry "f/x": its parent "f" is not a directory of the output"#,
        ),
        (
            vec![stat("unlisted/x", FILE)],
            r#"refusing the output entry "unlisted/x": its parent "unlisted" is not a directory of the output"#,
        ),
        (
            vec![link("h", FILE, "../outside")],
            r#"refusing the output hard link "h": "../outside" is not an earlier file of the output"#,
        ),
        (
            vec![link("s", SYMLINK, "/etc/passwd"), link("h", FILE, "s")],
            r#"refusing the output hard link "h": "s" is not an earlier file of the output"#,
        ),
    ];
    for (packets, message) in cases {
        let mut r = Receiver::default();
        let error = packets
            .into_iter()
            .map(|p| r.packet(p))
            .find_map(Result::err)
            .unwrap_or_else(|| panic!("no error, expected {message}"));
        assert_eq!(error.to_string(), message);
    }
}

/// A temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "docker-build-filesend-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `packets` through a receiver and a writer into `dest`.
fn receive(dest: &Path, packets: Vec<Packet>) -> Result<(), ReceiveError> {
    let mut r = Receiver::default();
    let mut w = DiskWriter::new(dest)?;
    for p in packets {
        for action in r.packet(p)? {
            w.apply(action)?;
        }
    }
    Ok(())
}

#[test]
fn files_directories_links_and_modes_are_written_under_the_destination() {
    let tmp = TempDir::new("write");
    let dest = tmp.0.join("out");
    let mut dir = stat("etc", MODE_DIR | 0o555);
    dir.stat.as_mut().unwrap().mod_time = 1_000_000_000_000_000_000;
    receive(
        &dest,
        vec![
            stat("bin", DIR),
            stat("bin/app", EXEC),
            link("bin/sh", SYMLINK, "/bin/busybox"),
            dir,
            stat("etc/conf", 0o400),
            link("etc/hard", 0o400, "etc/conf"),
            end_of_listing(),
            data(4, b"a=1\n"),
            data(1, b"#!/bin/sh\n"),
            data(1, b"echo hi\n"),
            data(1, b""),
            data(4, b""),
            packet(PacketType::PacketFin),
        ],
    )
    .unwrap();
    let app = dest.join("bin/app");
    assert_eq!(std::fs::read(&app).unwrap(), b"#!/bin/sh\necho hi\n");
    assert_eq!(std::fs::metadata(&app).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let conf = std::fs::metadata(dest.join("etc/conf")).unwrap();
    assert_eq!(conf.mode() & 0o7777, 0o400);
    assert_eq!(std::fs::read(dest.join("etc/hard")).unwrap(), b"a=1\n");
    assert_eq!(
        std::fs::metadata(dest.join("etc/hard")).unwrap().ino(),
        conf.ino()
    );
    let etc = std::fs::metadata(dest.join("etc")).unwrap();
    assert_eq!(etc.mode() & 0o7777, 0o555);
    assert_eq!(etc.mtime(), 1_000_000_000);
    // Let the cleanup remove it.
    std::fs::set_permissions(dest.join("etc"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn nothing_is_written_outside_the_destination_through_links_already_there() {
    let tmp = TempDir::new("links");
    let dest = tmp.0.join("out");
    let outside = tmp.0.join("outside");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"keep").unwrap();
    // The destination already holds links out of it, where the output has a folder and a file.
    std::os::unix::fs::symlink(&outside, dest.join("dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), dest.join("victim")).unwrap();
    receive(
        &dest,
        vec![
            stat("dir", DIR),
            stat("dir/victim", FILE),
            stat("victim", FILE),
            end_of_listing(),
            data(1, b"new"),
            data(1, b""),
            data(2, b"new"),
            data(2, b""),
            packet(PacketType::PacketFin),
        ],
    )
    .unwrap();
    // The links were replaced, not followed.
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    assert!(
        std::fs::symlink_metadata(dest.join("dir"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(std::fs::read(dest.join("dir/victim")).unwrap(), b"new");
    assert!(
        std::fs::symlink_metadata(dest.join("victim"))
            .unwrap()
            .is_file()
    );
}

#[test]
fn a_refused_entry_stops_before_anything_is_written_for_it() {
    let tmp = TempDir::new("refused");
    let dest = tmp.0.join("out");
    let error = receive(
        &dest,
        vec![link("escape", SYMLINK, ".."), stat("escape/owned", FILE)],
    )
    .unwrap_err();
    assert!(matches!(error, ReceiveError::NotBelowDirectory { .. }));
    assert!(!tmp.0.join("owned").exists());
    let names: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["escape"]);
}

#[test]
fn go_mode_bits_become_unix_permissions() {
    assert_eq!(unix_permissions(MODE_DIR | 0o755), 0o755);
    assert_eq!(unix_permissions(MODE_SETUID | 0o755), 0o4755);
    assert_eq!(unix_permissions(MODE_SETGID | MODE_STICKY | 0o700), 0o3700);
}
