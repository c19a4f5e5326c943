//! Captions: layout into lines and screens, and SRT / WebVTT / JSON lines / text writers.
