package files

import "time"

// run is the retention goroutine: it sweeps every SweepInterval until Close.
// A sweep that fails is retried at the next tick (the service logs nothing).
func (s *Service) run() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sweep()
		}
	}
}

// Sweep does at once what the retention goroutine does every SweepInterval:
// it ends the slots past their expiry (removing their temporary files and
// refunding their quota), forgets slots that ended more than an UploadTTL
// ago, removes the files as old as Retain and the blobs no token refers to
// any more, and forgets the tombstones of tokens removed 90 days ago or more.
// It returns ErrClosed after Close.
func (s *Service) Sweep() error {
	now := s.cfg.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.sweepSlotsLocked(now)
	s.removeDoomedLocked()
	s.mu.Unlock()
	if s.cfg.Retain >= 0 {
		if err := s.store.Expire(now.Add(-s.cfg.Retain), now); err != nil {
			return err
		}
	}
	return s.store.PruneGone(now.Add(-tombstoneTTL))
}
