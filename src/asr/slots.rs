//! Decode slots: how many Whisper decodes run at once on a machine that many
//! streams share, and who goes first.
//!
//! A server with more streams than cores must not run every decode at once
//! (whisper.cpp's threads would fight over the cores and every decode would crawl).
//! [`DecodeSlots`] lets `slots` decodes run together. Decodes that a final waits
//! for (an utterance ended, a file was sent) queue for a slot, first come first
//! served. A partial decode never queues: it takes a slot that is free with no
//! final waiting, or is skipped, and its stream tries again with its next audio.
//! Under load partials thin out and finals keep their latency.

use std::sync::{Condvar, Mutex};

/// A counting semaphore for decodes, with finals before partials (see the
/// [module docs](self)).
#[derive(Debug)]
pub struct DecodeSlots {
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// Tickets of finals: `next` is the next one handed out, `serving` the oldest
    /// still waiting (or the next to come, when none waits).
    next: u64,
    serving: u64,
}

/// A held slot; released on drop.
#[derive(Debug)]
pub struct Slot<'a>(&'a DecodeSlots);

impl DecodeSlots {
    /// `slots` decodes at once (at least one).
    pub fn new(slots: usize) -> Self {
        Self {
            state: Mutex::new(State { free: slots.max(1), next: 0, serving: 0 }),
            freed: Condvar::new(),
        }
    }

    /// A slot for a decode a final waits for: waits its turn, first come first served.
    pub fn acquire(&self) -> Slot<'_> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = state.next;
        state.next += 1;
        while state.free == 0 || state.serving != ticket {
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.free -= 1;
        state.serving += 1;
        drop(state);
        // The next final in line may find a slot free too.
        self.freed.notify_all();
        Slot(self)
    }

    /// A slot for a partial decode, if one is free and no final is waiting.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.free == 0 || state.serving != state.next {
            return None;
        }
        state.free -= 1;
        Some(Slot(self))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner()).free += 1;
        self.0.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn partials_take_only_free_slots_and_never_pass_a_waiting_final() {
        let slots = Arc::new(DecodeSlots::new(1));
        let held = slots.acquire();
        assert!(slots.try_acquire().is_none(), "no slot is free");
        let waiting = {
            let slots = Arc::clone(&slots);
            std::thread::spawn(move || {
                let _slot = slots.acquire();
                std::thread::sleep(Duration::from_millis(50));
            })
        };
        // The final is queued behind the held slot.
        while slots.state.lock().unwrap().next == 1 {
            std::thread::yield_now();
        }
        drop(held);
        // Freed, but the final is first in line: the partial is turned away until
        // the final is done with it.
        while slots.state.lock().unwrap().serving == 1 {
            assert!(slots.try_acquire().is_none(), "a partial passed a waiting final");
        }
        waiting.join().unwrap();
        assert!(slots.try_acquire().is_some(), "all slots are free again");
    }

    #[test]
    fn finals_are_served_in_arrival_order() {
        let slots = Arc::new(DecodeSlots::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = slots.acquire();
        let mut threads = Vec::new();
        for i in 0..4 {
            let (mine, order) = (Arc::clone(&slots), Arc::clone(&order));
            threads.push(std::thread::spawn(move || {
                let _slot = mine.acquire();
                order.lock().unwrap().push(i);
            }));
            // Each takes its ticket before the next starts.
            while slots.state.lock().unwrap().next != i as u64 + 2 {
                std::thread::yield_now();
            }
        }
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    }

    #[test]
    fn several_slots_run_together() {
        let slots = DecodeSlots::new(2);
        let a = slots.try_acquire().expect("two free");
        let b = slots.acquire();
        assert!(slots.try_acquire().is_none());
        drop(a);
        assert!(slots.try_acquire().is_some());
        drop(b);
    }
}
