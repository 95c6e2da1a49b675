package chat

// This file is flood control: how fast a client's lines are taken.

import (
	"time"

	"github.com/natter-chat/natter/chat/protocol"
)

// admission is what flood control decides about a line.
type admission int

const (
	admitted admission = iota
	refused
	kicked
)

// admit applies flood control to the line just read: within the client's
// rate it passes at once; a little over, the client is made to wait (its
// connection is not read meanwhile, as IRC servers' "fakelag" does); far
// over, the line is refused with the time to wait; and after
// FloodRefusals refusals in a row the client is disconnected. Only this
// client's reader waits, so a flood never slows anyone else.
func (ss *session) admit() admission {
	if ss.limiter == nil {
		return admitted
	}
	srv := ss.srv
	r := ss.limiter.Reserve()
	d := r.Delay()
	if d <= srv.opts.FloodDelay {
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-srv.stopping:
				t.Stop()
			}
		}
		ss.refusals = 0
		return admitted
	}
	r.Cancel()
	ss.refusals++
	srv.metrics.rejected.WithLabelValues(protocol.CodeRateLimited).Inc()
	ss.inflight.Wait() // the refusal comes after the lines before it
	kick := ss.refusals >= srv.opts.FloodRefusals
	if kick {
		srv.log.Warn("Disconnecting flooding client " + ss.addr())
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if kick {
		srv.fail(ss, protocol.CodeFlooding, "disconnected for sending too fast")
		return kicked
	}
	srv.fail(ss, protocol.CodeRateLimited, "you are sending too fast; line refused, send again in %v", d.Round(100*time.Millisecond))
	return refused
}
