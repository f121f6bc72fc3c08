//! Append + sync on `FileStorage`: what one durable write of 1 entry, and of a batch of 64
//! entries (group commit), costs. Entries carry 100 bytes of data.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft::storage::{FileStorage, Storage};
use raft::{Entry, EntryKind};

fn append_and_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("file_storage/append_sync");
    for batch in [1u64, 64] {
        group.throughput(Throughput::Elements(batch));
        group.bench_function(format!("{batch}x100B"), |b| {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut storage = FileStorage::open(dir.path()).expect("open");
            let mut next = 1;
            b.iter(|| {
                let entries: Vec<Entry> = (next..next + batch)
                    .map(|index| Entry {
                        index,
                        term: 1,
                        kind: EntryKind::Normal,
                        data: vec![index as u8; 100],
                    })
                    .collect();
                storage.append(&entries).expect("append");
                storage.sync().expect("sync");
                next += batch;
            });
        });
    }
    group.finish();
}

criterion_group!(benches, append_and_sync);
criterion_main!(benches);
