//! A bounded FIFO that drops its oldest entry when full: the outcome history and the queue of
//! transitions not yet polled.

use std::collections::VecDeque;

#[derive(Clone, Debug)]
pub(crate) struct Ring<T> {
    items: VecDeque<T>,
    cap: usize,
}

impl<T> Ring<T> {
    pub(crate) fn new(cap: usize) -> Ring<T> {
        Ring {
            items: VecDeque::with_capacity(cap),
            cap,
        }
    }

    pub(crate) fn push_back(&mut self, item: T) {
        if self.cap == 0 {
            return;
        }
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }
}
