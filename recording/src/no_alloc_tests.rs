//! Recording allocates nothing per record: after `RecordWriter::create` and `RecordSink::new`,
//! writing (flushes, large write-through records and file rotations included), `try_record` and
//! draining into the writer allocate zero bytes. Reading a file already loaded allocates nothing
//! per record either. A counting global allocator measures the test thread only.
//!
//! The counting allocator is this crate's unit-test binary's global allocator (a global allocator
//! is per binary); it only counts while a test on the same thread asks it to, so the other tests
//! are unaffected.

use keel_amm::alloc_count::{CountingAllocator, allocations as counted};

use crate::{
    FlushPolicy, FsyncPolicy, RecordKind, RecordReader, RecordSink, RecordWriter, RecordingHeader,
    SinkConfig, SlotClass, WriterConfig,
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result and the (bytes, calls) allocated on this thread meanwhile.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    let (r, a) = counted(f);
    (r, a.bytes, a.calls)
}

fn header() -> RecordingHeader {
    RecordingHeader {
        start_epoch_ns: 1_750_000_000_000_000_000,
        config_toml: "[engine]\nqueue = 4096\n".into(),
        metadata_json: r#"{"test":"no_alloc"}"#.into(),
    }
}

fn config(dir: &std::path::Path, fsync: FsyncPolicy) -> WriterConfig {
    let mut cfg = WriterConfig::new(dir, "rec");
    cfg.max_file_bytes = 256 * 1024;
    cfg.flush = FlushPolicy { every_records: 100, every_bytes: 16 * 1024 };
    cfg.fsync = fsync;
    cfg
}

#[test]
fn the_writer_allocates_nothing_per_record_across_flushes_rotations_and_large_records() {
    for fsync in [FsyncPolicy::Never, FsyncPolicy::OnRotateAndClose] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = RecordWriter::create(config(dir.path(), fsync), &header()).unwrap();
        let small = [0x5Au8; 100];
        let large = vec![0xA5u8; 100 * 1024]; // larger than the buffer: written straight through
        let n = if fsync == FsyncPolicy::Never { 50_000 } else { 10_000 };
        let ((), bytes, calls) = allocations(|| {
            for i in 0..n {
                let payload: &[u8] = if i % 1000 == 999 { &large } else { &small };
                writer.write(RecordKind::ExchangeFrame, (i % 4) as u16, i, payload).unwrap();
            }
            writer.flush().unwrap();
        });
        let files = writer.current_file_seq();
        assert!(files >= 5, "only {files} files: rotation was not exercised");
        assert_eq!(
            (bytes, calls),
            (0, 0),
            "{fsync:?}: {calls} allocations, {bytes} bytes over {files} files"
        );
        let stats = writer.close().unwrap();
        assert_eq!(stats.records, n);
    }
}

#[test]
fn try_record_and_draining_into_the_writer_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RecordWriter::create(config(dir.path(), FsyncPolicy::Never), &header()).unwrap();
    let sink = RecordSink::new(&SinkConfig {
        classes: vec![SlotClass { slot_bytes: 256, slots: 64 }, SlotClass { slot_bytes: 4096, slots: 4 }],
    })
    .unwrap();
    let payload = [7u8; 200];
    let big = [8u8; 3000];
    let (written, bytes, calls) = allocations(|| {
        let mut written = 0;
        for round in 0..2_000u64 {
            for i in 0..100 {
                // Some rounds overfill the sink: drops are counted without allocating too.
                let _ = sink.try_record(RecordKind::PendingTx, 1, round * 100 + i, &payload);
            }
            let _ = sink.try_record(RecordKind::Head, 2, round, &big);
            let _ = sink.try_record(RecordKind::Head, 2, round, &[0; 5000]); // oversized
            written += sink.drain_into(&mut writer, usize::MAX).unwrap();
        }
        written
    });
    assert_eq!((bytes, calls), (0, 0), "{calls} allocations, {bytes} bytes");
    let stats = sink.stats();
    assert_eq!(stats.records as usize, written);
    assert!(stats.dropped_full > 0 && stats.dropped_oversize == 2_000, "{stats:?}");
}

#[test]
fn reading_a_loaded_file_allocates_nothing_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), FsyncPolicy::Never);
    cfg.max_file_bytes = 64 * 1024 * 1024;
    let mut writer = RecordWriter::create(cfg, &header()).unwrap();
    for i in 0..20_000u64 {
        writer.write(RecordKind::PoolLog, 0, i, &[1u8; 100]).unwrap();
    }
    writer.close().unwrap();
    let mut reader = RecordReader::open(dir.path(), "rec").unwrap();
    // The first call loads the file (allocations allowed there).
    assert!(reader.next_record().unwrap().is_ok());
    let (count, bytes, calls) = allocations(|| {
        let mut count = 1u64;
        while let Some(item) = reader.next_record() {
            assert!(item.is_ok());
            count += 1;
        }
        count
    });
    assert_eq!(count, 20_000);
    assert_eq!((bytes, calls), (0, 0), "{calls} allocations, {bytes} bytes");
}

#[test]
fn the_counting_allocator_sees_allocations_on_this_thread() {
    let (v, bytes, calls) = allocations(|| Vec::<u8>::with_capacity(1000));
    assert_eq!((bytes, calls), (1000, 1));
    drop(v);
}

#[test]
fn recording_frames_and_chain_updates_allocates_nothing() {
    use alloy_primitives::{Address, U256};
    use keel_amm::pool::{PoolChange, PoolUpdate};
    use keel_engine::chain::{ChainUpdate, PoolSource};
    use keel_engine::event::{Balance, BlockHeader, Event};

    let sink = std::sync::Arc::new(
        RecordSink::new(&SinkConfig { classes: vec![SlotClass { slot_bytes: 512, slots: 4096 }] }).unwrap(),
    );
    let rec = crate::Recorder::new(std::sync::Arc::clone(&sink), 0);
    let pool = ChainUpdate::Pool {
        update: PoolUpdate {
            pool: 1,
            address: Address::repeat_byte(9),
            block: 7,
            change: PoolChange::V2 { reserve0: U256::from(1u64 << 60), reserve1: U256::from(3u8) },
            recv_ns: 5,
        },
        source: PoolSource::Logs,
    };
    let head = Event::Block(BlockHeader { number: 7, timestamp: 1, base_fee: 2, recv_ns: 3 });
    let balance = Event::Balance(Balance {
        portfolio: keel_engine::PortfolioId(0),
        token: keel_engine::TokenId(1),
        amount: U256::from(5u8),
        block: 7,
        recv_ns: 3,
    });
    let frame = br#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
    let ((), bytes, calls) = allocations(|| {
        for i in 0..1_000u64 {
            assert!(rec.exchange_frame(i, frame));
            assert!(rec.chain_update(crate::recorder::SOURCE_NODE_FEED, i, &pool));
            assert!(rec.engine_event(crate::recorder::SOURCE_NODE_FEED, i, &head));
            assert!(rec.engine_event(crate::recorder::SOURCE_NODE_FEED, i, &balance));
        }
    });
    assert_eq!((bytes, calls), (0, 0), "{calls} allocations, {bytes} bytes");
    assert_eq!(sink.stats().queued, 4_000);
}
