//! Structure statistics (in progress).
