//! loadgen: fills a LogosNet room and reports capacity and latency (see issue 5).
