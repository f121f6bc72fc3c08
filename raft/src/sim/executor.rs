//! Cooperative tasks in virtual time: the simulator's stand-in for the labs' tester threads.
//!
//! A task is a future; it waits by sleeping in virtual time (see
//! [`Cluster::sleep`](super::Cluster::sleep)) or on another task's [`JoinHandle`]. The executor
//! polls the main future and then every task, in spawn order; when none can make progress it
//! runs the simulation up to the earliest wake-up time any of them asked for. There is one
//! thread and no real waiting, so runs stay exactly reproducible.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// The tasks of one cluster and the earliest wake-up time they asked for.
#[derive(Default)]
pub(crate) struct Executor {
    tasks: RefCell<Vec<Task>>,
    spawned: RefCell<Vec<Task>>,
    next_wake: Cell<u64>,
    running: Cell<bool>,
}

/// The result of a spawned task, to await.
pub struct JoinHandle<T> {
    slot: Rc<RefCell<Option<T>>>,
    done: Rc<Cell<bool>>,
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.done.get()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        match self.slot.borrow_mut().take() {
            Some(v) => Poll::Ready(v),
            None if self.done.get() => panic!("a JoinHandle was awaited after it completed"),
            None => Poll::Pending,
        }
    }
}

fn noop_waker() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(std::ptr::null(), &VTABLE)
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: every function of the vtable ignores the (null) data pointer.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

impl Executor {
    /// Asks to be polled again once virtual time reaches `t` (microseconds).
    pub(crate) fn wake_at(&self, t: u64) {
        self.next_wake.set(self.next_wake.get().min(t));
    }

    /// Adds a task; it first runs in the current round.
    pub(crate) fn spawn<T: 'static>(
        &self,
        fut: impl Future<Output = T> + 'static,
    ) -> JoinHandle<T> {
        let slot = Rc::new(RefCell::new(None));
        let done = Rc::new(Cell::new(false));
        let (s, d) = (slot.clone(), done.clone());
        self.spawned.borrow_mut().push(Box::pin(async move {
            let v = fut.await;
            *s.borrow_mut() = Some(v);
            d.set(true);
        }));
        JoinHandle { slot, done }
    }

    /// Polls `main` and the tasks to completion of `main`; `advance(t)` runs the simulation to
    /// virtual time `t` whenever everything waits. Tasks still pending when `main` completes
    /// (or panics) are dropped.
    pub(crate) fn block_on<F: Future>(&self, main: F, mut advance: impl FnMut(u64)) -> F::Output {
        assert!(!self.running.get(), "block_on cannot be nested");
        self.running.set(true);
        struct Reset<'a>(&'a Executor);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                // Tasks may hold handles to the cluster that owns this executor: dropping them
                // here breaks that cycle.
                let tasks = std::mem::take(&mut *self.0.tasks.borrow_mut());
                let spawned = std::mem::take(&mut *self.0.spawned.borrow_mut());
                drop((tasks, spawned));
                self.0.running.set(false);
            }
        }
        let _reset = Reset(self);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut main = std::pin::pin!(main);
        loop {
            self.next_wake.set(u64::MAX);
            if let Poll::Ready(v) = main.as_mut().poll(&mut cx) {
                return v;
            }
            if self.poll_tasks(&mut cx) {
                continue;
            }
            let wake = self.next_wake.get();
            assert!(
                wake != u64::MAX,
                "every task waits for something that no sleep will bring: a deadlock"
            );
            advance(wake);
        }
    }

    /// Polls every task once; true if any finished or a new one was spawned (then everything
    /// is polled again before time moves).
    fn poll_tasks(&self, cx: &mut Context<'_>) -> bool {
        let mut tasks = std::mem::take(&mut *self.tasks.borrow_mut());
        tasks.append(&mut self.spawned.borrow_mut());
        let before = tasks.len();
        let mut kept = Vec::with_capacity(before);
        for mut t in tasks {
            if t.as_mut().poll(cx).is_pending() {
                kept.push(t);
            }
        }
        let progressed = kept.len() < before || !self.spawned.borrow().is_empty();
        *self.tasks.borrow_mut() = kept;
        progressed
    }
}
