//! Deterministic turmoil simulations of the LogosNet server (see issue 4; scenarios live in `tests/`).
