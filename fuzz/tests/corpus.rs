//! Replays every fuzz target over its stored corpus (`fuzz/corpus/NAME/`):
//! each input the fuzzer once found interesting, and each crash it found
//! (fixed since), runs again on every `cargo test`.

use std::path::{Path, PathBuf};

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

#[test]
fn every_target_runs_over_its_corpus() {
    let mut total = 0;
    for (name, target) in mpcomm_fuzz::TARGETS {
        let dir = corpus_dir(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target keeps a corpus)", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(result.is_ok(), "{name}: {} fails", path.display());
            n += 1;
        }
        assert!(n > 0, "{name}: empty corpus in {}", dir.display());
        total += n;
    }
    eprintln!("{total} corpus inputs replayed");
}

/// Writes the seed corpus (run once with MPCOMM_WRITE_SEEDS=1; the files
/// are committed). Seeds are valid inputs of each decoder, so the fuzzer
/// starts deep in the code instead of at "bad magic".
#[test]
fn seeds() {
    if std::env::var_os("MPCOMM_WRITE_SEEDS").is_none() {
        return;
    }
    use bytes::Bytes;
    use mpcomm_core::seal::Sealer;
    use mpcomm_core::wire::{self, Ack, Frame, Header, Hello, Record, RecordKind, Sack};
    let write = |name: &str, file: &str, data: &[u8]| {
        let dir = corpus_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), data).unwrap();
    };
    let header = Header {
        run_id: mpcomm_fuzz::FUZZ_RUN,
        from: 1,
        to: 0,
        incarnation: 9,
        view: 1,
    };
    let mut sack = Sack::empty();
    sack.set(3);
    let frames = [
        vec![Frame::Hello(Hello {
            members: 2,
            digest: 5,
        })],
        vec![
            Frame::Ack(Ack {
                cum: 1,
                sack,
                clock: 4,
                sent: 2,
                flow: 2,
                stable: 1,
                done: false,
                done_seen: false,
                want_reply: true,
                nak: false,
            }),
            Frame::Record(Record {
                sender: 1,
                link_seq: 0,
                kind: RecordKind::Data { seq: 0 },
                stamp: 3,
                ext: Bytes::from_static(b"x"),
                payload: Bytes::from_static(b"hello"),
            }),
            Frame::Record(Record {
                sender: 1,
                link_seq: 1,
                kind: RecordKind::EndOfStream { count: 1 },
                stamp: 4,
                ext: Bytes::new(),
                payload: Bytes::new(),
            }),
        ],
    ];
    let keys = mpcomm_fuzz::fuzz_keys();
    let mut sealer = Sealer::new(&keys, mpcomm_fuzz::FUZZ_RUN, 1, 9);
    let mut all_sealed = vec![];
    for (i, f) in frames.iter().enumerate() {
        let clear = wire::encode(header, f).unwrap();
        write("datagram", &format!("seed-{i}"), &clear);
        let mut buf = clear.clone();
        buf.resize(wire::MAX_DATAGRAM, 0);
        let n = sealer.seal(&mut buf, clear.len()).unwrap();
        write("sealed", &format!("seed-{i}"), &buf[..n]);
        all_sealed.extend_from_slice(&buf[..n]);
        all_sealed.extend_from_slice(&[0xff, 0xfe]);
        all_sealed.extend_from_slice(&clear);
        all_sealed.extend_from_slice(&[0xff, 0xfe]);
    }
    write("peer", "seed-0", &all_sealed);
    for (i, line) in [
        r#"{"op":"register","name":"peer-1","data_addr":"127.0.0.1:7000","control_addr":"127.0.0.1:7001","region":"eu"}"#,
        r#"{"op":"heartbeat","name":"peer-1"}"#,
        r#"{"op":"list"}"#,
        r#"{"op":"start","run":7,"member":0,"members":[{"name":"a","data_addr":"127.0.0.1:1","region":"r"}],"order":"total","messages":3,"min_interval_us":1,"max_interval_us":2,"payload":8,"seed":1,"wan":null,"report_to":"127.0.0.1:9","deadline_ms":1000}"#,
        r#"{"op":"end","entries":2}"#,
        r#"{"ok":false,"error":"no"}"#,
    ]
    .iter()
    .enumerate()
    {
        write("control", &format!("seed-{i}"), line.as_bytes());
    }
    let mut log = Vec::new();
    for seq in 0..3u64 {
        let e = mpcomm_check::LogEntry {
            run: 7,
            peer: 0,
            sender: 1,
            seq,
            stamp: Some(seq + 1),
            sent_us: Some(50),
            delivered_us: Some(100 + seq),
            after: None,
            op: None,
        };
        mpcomm_check::log::write_entry(&mut log, &e).unwrap();
    }
    write("log", "seed-0", &log);
    for (i, w) in [
        "intra=2ms±1ms, inter=80ms±30ms, loss=1%",
        "loss=0.5",
        "intra=1ms, inter=1s±0ms",
        "10ms",
    ]
    .iter()
    .enumerate()
    {
        write("wan", &format!("seed-{i}"), w.as_bytes());
    }
    write(
        "keyfile",
        "seed-0",
        mpcomm::keyfile::format(&keys).as_bytes(),
    );
}
