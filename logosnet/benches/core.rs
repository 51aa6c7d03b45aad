//! Criterion benchmarks of the hot paths that need no network: the room's
//! public fan-out to a full room, and frame reassembly.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logosnet::codec::{self, FrameDecoder};
use logosnet::protocol::{ClientFrame, Role};
use logosnet::room::{ConnId, Output, Room, RoomConfig};

/// A room with 255 named participants and 255 observers, output drained.
fn full_room(now: Instant) -> Room {
    let mut room = Room::new(RoomConfig::default());
    let mut id: ConnId = 0;
    for i in 0..255 {
        id += 1;
        room.handle_open(now, id);
        room.handle_frame(now, id, ClientFrame::Hello(Role::Participant));
        room.handle_frame(now, id, ClientFrame::Username(format!("user{i}")));
        id += 1;
        room.handle_open(now, id);
        room.handle_frame(now, id, ClientFrame::Hello(Role::Observer));
    }
    while room.poll_output().is_some() {}
    room
}

fn fanout(c: &mut Criterion) {
    let now = Instant::now();
    let mut room = full_room(now);
    let line = "x".repeat(64);
    let mut group = c.benchmark_group("room");
    group.throughput(Throughput::Elements(509));
    group.bench_function("public_line_to_full_room", |b| {
        b.iter(|| {
            room.handle_frame(now, 1, ClientFrame::Chat(line.clone()));
            let mut sends = 0;
            while let Some(out) = room.poll_output() {
                if let Output::Send { frame, .. } = out {
                    black_box(frame);
                    sends += 1;
                }
            }
            assert_eq!(sends, 509);
        })
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let frame = codec::encode(&ClientFrame::Chat("y".repeat(64))).expect("a 64-byte line fits");
    let stream: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 1000)
        .collect();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1000));
    for piece in [2, 4096] {
        group.bench_function(format!("decode_1000_frames_in_{piece}_byte_reads"), |b| {
            b.iter(|| {
                let mut decoder = FrameDecoder::new();
                let mut n = 0;
                for chunk in stream.chunks(piece) {
                    decoder.extend(chunk);
                    while let Ok(Some(f)) = decoder.next_frame::<ClientFrame>() {
                        black_box(f);
                        n += 1;
                    }
                }
                assert_eq!(n, 1000);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout, decode);
criterion_main!(benches);
