use super::*;

const MARKS: QueueMarks = QueueMarks {
    heavy: 64 * 1024,
    light: 16 * 1024,
};

fn outbox() -> (Outbox, Arc<Totals>) {
    let totals = Arc::new(Totals::default());
    (Outbox::new(MARKS, totals.clone()), totals)
}

/// A whole frame of `len` bytes (header included), all `fill` after it.
fn frame(len: usize, fill: u8) -> Vec<u8> {
    let mut f = ((len - HEADER_BYTES) as u32).to_be_bytes().to_vec();
    f.resize(len, fill);
    f
}

/// Writes the whole batch, telling the outbox as a writer does.
fn write_all(outbox: &Outbox, batch: &mut Batch) -> Vec<u8> {
    let out = batch.chunk().to_vec();
    batch.advance(out.len());
    outbox.written(batch.take_written());
    out
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_queue_is_charged_the_capacity_that_holds_its_frames_and_the_totals_follow() {
    let (outbox, totals) = outbox();
    let t0 = Instant::now();
    assert_eq!(outbox.charged(), 0);
    outbox.push(&frame(5, 1), t0);
    let q = outbox.lock();
    let expected = q.pending.capacity() + q.marks.capacity() * std::mem::size_of::<Mark>();
    drop(q);
    assert!(expected >= 5);
    assert_eq!(outbox.charged(), expected);
    assert_eq!(totals.charged(), expected);
    // A second queue adds its own charge to the same totals.
    let other = Outbox::new(MARKS, totals.clone());
    other.push(&frame(1000, 2), t0);
    assert_eq!(totals.charged(), outbox.charged() + other.charged());
    assert!(other.charged() >= 1000);
}

#[test]
fn a_taken_batch_stays_charged_until_it_is_finished() {
    let (outbox, totals) = outbox();
    let t0 = Instant::now();
    outbox.push(&frame(3000, 1), t0);
    let before = outbox.charged();
    let mut batch = Batch::default();
    assert_eq!(outbox.take(&mut batch), Next::Write);
    assert_eq!(batch.frames(), 1);
    // The frames moved to the writer's buffer, still held, still charged.
    assert_eq!(outbox.charged(), before);
    write_all(&outbox, &mut batch);
    assert_eq!(outbox.charged(), before, "written but not yet handed back");
    outbox.finished(&mut batch);
    assert_eq!(
        outbox.charged(),
        outbox.lock().marks.capacity() * std::mem::size_of::<Mark>()
    );
    assert_eq!(totals.charged(), outbox.charged());
    assert_eq!(outbox.take(&mut batch), Next::Wait);
}

#[test]
fn a_take_carries_every_frame_in_order_as_one_piece() {
    let (outbox, _) = outbox();
    let t0 = Instant::now();
    outbox.push(&frame(10, 1), t0);
    outbox.push(&frame(20, 2), t0);
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    assert_eq!(batch.frames(), 2);
    assert_eq!(batch.chunk().len(), 30, "one contiguous piece");
    let mut expected = frame(10, 1);
    expected.extend(frame(20, 2));
    assert_eq!(write_all(&outbox, &mut batch), expected);
}

#[test]
fn heavy_past_the_heavy_mark_until_charged_below_the_light_mark() {
    let (outbox, _) = outbox();
    let t0 = Instant::now();
    let mut became_heavy = 0;
    while !outbox.is_heavy() {
        if outbox.push(&frame(1000, 1), t0) {
            became_heavy += 1;
        }
    }
    assert_eq!(became_heavy, 1, "told once");
    assert!(outbox.charged() > MARKS.heavy);
    assert!(!outbox.push(&frame(1000, 1), t0), "already heavy");
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    write_all(&outbox, &mut batch);
    assert!(
        outbox.is_heavy(),
        "written, but the buffer is not handed back"
    );
    assert!(
        outbox.finished(&mut batch),
        "light once the buffer is given back"
    );
    assert!(!outbox.is_heavy());
}

#[test]
fn a_queue_still_charged_above_the_light_mark_stays_heavy() {
    let (outbox, _) = outbox();
    let t0 = Instant::now();
    while !outbox.push(&frame(1000, 1), t0) {}
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    // More than the light mark arrives while the batch is written.
    for _ in 0..(MARKS.light / 1000 + 1) {
        outbox.push(&frame(1000, 2), t0);
    }
    write_all(&outbox, &mut batch);
    assert!(!outbox.finished(&mut batch));
    assert!(outbox.is_heavy());
}

#[test]
fn the_oldest_unsent_frame_is_dated_by_its_group_and_moves_with_the_writes() {
    let (outbox, _) = outbox();
    let t0 = Instant::now();
    assert_eq!(outbox.oldest_unsent(), None);
    outbox.push(&frame(10, 1), t0);
    outbox.push(&frame(10, 2), t0 + ms(50)); // same group: dated by its last
    outbox.push(&frame(10, 3), t0 + ms(150)); // a new group
    assert_eq!(outbox.oldest_unsent(), Some(t0 + ms(50)));
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    // Part of the first group written: it is still unsent.
    batch.advance(15);
    outbox.written(batch.take_written());
    assert_eq!(outbox.oldest_unsent(), Some(t0 + ms(50)));
    // The first group wholly written.
    batch.advance(5);
    outbox.written(batch.take_written());
    assert_eq!(outbox.oldest_unsent(), Some(t0 + ms(150)));
    // Half of the last frame is not sent.
    batch.advance(5);
    outbox.written(batch.take_written());
    assert_eq!(outbox.oldest_unsent(), Some(t0 + ms(150)));
    batch.advance(5);
    outbox.written(batch.take_written());
    assert_eq!(outbox.oldest_unsent(), None);
}

#[test]
fn a_lagging_queue_keeps_one_record_per_grain() {
    let (outbox, _) = outbox();
    let t0 = Instant::now();
    // Ten seconds of frames, one every millisecond, none written.
    for i in 0..10_000 {
        outbox.push(&frame(5, 1), t0 + ms(i));
    }
    let records = outbox.lock().marks.len();
    assert_eq!(records, 100, "10 s of frames at one record per 100 ms");
    assert_eq!(outbox.oldest_unsent(), Some(t0 + ms(99)));
}

#[test]
fn retiring_uncharges_everything_once() {
    let (outbox, totals) = outbox();
    let t0 = Instant::now();
    outbox.push(&frame(100, 1), t0);
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    outbox.push(&frame(100, 3), t0);
    outbox.abort(None);
    assert_eq!(totals.charged(), 0);
    outbox.retire();
    outbox.written(100);
    outbox.finished(&mut batch);
    assert_eq!(totals.charged(), 0, "nothing uncharged twice");
    outbox.push(&frame(100, 4), t0);
    assert_eq!(totals.charged(), 0, "a retired queue takes nothing");
    assert_eq!(outbox.oldest_unsent(), None);
}

#[test]
fn a_farewell_follows_the_half_written_frame() {
    let (outbox, _) = outbox();
    let t0 = Instant::now();
    for fill in [1, 2, 3] {
        outbox.push(&frame(8, fill), t0);
    }
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    batch.advance(10); // the first frame and 2 bytes of the second
    batch.cut_and_append(b"XY");
    let mut expected = frame(8, 2)[2..].to_vec();
    expected.extend_from_slice(b"XY");
    assert_eq!(batch.chunk(), expected);

    let (second, _) = self::outbox();
    second.push(&frame(8, 1), t0);
    second.push(&frame(8, 2), t0);
    let mut batch = Batch::default();
    second.take(&mut batch);
    batch.advance(8); // exactly one whole frame
    batch.cut_and_append(b"XY");
    assert_eq!(batch.chunk(), b"XY", "an unbegun frame is dropped");
}

#[test]
fn a_cut_keeps_the_frame_in_progress_and_the_last_frame_queued() {
    let t0 = Instant::now();
    // The last frame still in the queue: it is handed over, the rest of the
    // queue dropped.
    let (outbox, totals) = outbox();
    for fill in [1, 2] {
        outbox.push(&frame(8, fill), t0);
    }
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    outbox.push(&frame(8, 3), t0);
    outbox.push(&frame(9, 4), t0);
    batch.advance(3);
    let last = outbox.cut();
    assert_eq!(last, Some(frame(9, 4)));
    assert_eq!(totals.charged(), 0, "a cut queue is retired");
    batch.cut_keeping_last(last);
    let mut expected = frame(8, 1)[3..].to_vec();
    expected.extend(frame(9, 4));
    assert_eq!(batch.chunk(), expected);

    // The last frame already taken and not begun: the batch keeps it.
    let (outbox, _) = self::outbox();
    for (len, fill) in [(8, 1), (8, 2), (9, 3)] {
        outbox.push(&frame(len, fill), t0);
    }
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    batch.advance(8);
    let last = outbox.cut();
    assert_eq!(last, None);
    batch.cut_keeping_last(last);
    assert_eq!(batch.chunk(), frame(9, 3));

    // The last frame is the one in progress: only its rest goes.
    let (outbox, _) = self::outbox();
    for (len, fill) in [(8, 1), (9, 2)] {
        outbox.push(&frame(len, fill), t0);
    }
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    batch.advance(10);
    batch.cut_keeping_last(outbox.cut());
    assert_eq!(batch.chunk(), &frame(9, 2)[2..]);
}

#[test]
fn close_is_reported_after_the_frames() {
    let (outbox, _) = outbox();
    let mut batch = Batch::default();
    assert_eq!(outbox.take(&mut batch), Next::Wait);
    outbox.push(&frame(7, 9), Instant::now());
    outbox.close();
    assert_eq!(outbox.take(&mut batch), Next::WriteThenClose);
    assert_eq!(batch.remaining(), 7);
    assert!(!outbox.push(&frame(7, 9), Instant::now()));
    assert_eq!(batch.remaining(), 7, "nothing queued after the close");
}

#[test]
fn an_emptied_buffer_that_grew_gives_its_memory_back() {
    let (outbox, totals) = outbox();
    let t0 = Instant::now();
    for _ in 0..100 {
        outbox.push(&frame(1000, 1), t0);
    }
    let mut batch = Batch::default();
    outbox.take(&mut batch);
    write_all(&outbox, &mut batch);
    outbox.finished(&mut batch);
    assert!(batch.buf.capacity() <= IDLE_BUFFER_BYTES);
    assert!(outbox.lock().pending.capacity() <= IDLE_BUFFER_BYTES);
    assert!(totals.charged() <= 8 * std::mem::size_of::<Mark>());
}

#[test]
fn a_steady_connection_swaps_its_two_buffers_and_allocates_nothing_more() {
    let (outbox, _) = outbox();
    let t0 = Instant::now();
    let mut batch = Batch::default();
    outbox.push(&frame(100, 1), t0);
    outbox.take(&mut batch);
    write_all(&outbox, &mut batch);
    outbox.finished(&mut batch);
    outbox.push(&frame(100, 2), t0);
    let pending = outbox.lock().pending.as_ptr();
    let spare = batch.buf.as_ptr();
    outbox.take(&mut batch);
    assert_eq!(batch.buf.as_ptr(), pending, "the filled buffer is written");
    assert_eq!(
        outbox.lock().pending.as_ptr(),
        spare,
        "the spare is filled next"
    );
}

/// The room pushes while the writer takes, writes and hands back on another
/// thread: the server-wide total is changed under each queue's lock, so it
/// never wraps below zero (it once could: a writer subtracted before the
/// room's addition landed) and ends where the queue does.
#[test]
fn the_totals_never_wrap_when_the_room_and_the_writer_race() {
    let totals = Arc::new(Totals::default());
    let outbox = Arc::new(Outbox::new(MARKS, totals.clone()));
    let t0 = Instant::now();
    let pusher = {
        let outbox = outbox.clone();
        std::thread::spawn(move || {
            for i in 0..20_000u64 {
                outbox.push(&frame(40, 1), t0 + Duration::from_micros(i));
            }
        })
    };
    let writer = {
        let outbox = outbox.clone();
        std::thread::spawn(move || {
            let mut batch = Batch::default();
            for _ in 0..200_000 {
                if outbox.take(&mut batch) == Next::Write {
                    write_all(&outbox, &mut batch);
                    outbox.finished(&mut batch);
                }
            }
        })
    };
    let watcher = {
        let totals = totals.clone();
        std::thread::spawn(move || {
            for _ in 0..200_000 {
                assert!(totals.charged() < 1 << 30, "the total wrapped");
            }
        })
    };
    pusher.join().expect("pusher");
    writer.join().expect("writer");
    watcher.join().expect("watcher");
    assert_eq!(totals.charged(), outbox.charged());
}
