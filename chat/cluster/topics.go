package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// topic is a room's topic as the rooms bucket keeps it.
type topic struct {
	By   string `json:"by"`
	Text string `json:"text"`
}

// SetTopic sets room's topic for the whole cluster. Every node, this one
// included, hears of it through the function given to OnTopic.
func (n *Node) SetTopic(room, by, text string) error {
	b, err := json.Marshal(topic{By: by, Text: text})
	if err != nil {
		return err
	}
	ctx, cancel := n.op()
	defer cancel()
	if _, err := n.rooms.Put(ctx, topicKey(room), b); err != nil {
		return fmt.Errorf("cluster: topic: %w", err)
	}
	return nil
}

// Topic returns room's topic, "" if it has none.
func (n *Node) Topic(room string) (string, error) {
	ctx, cancel := n.op()
	defer cancel()
	e, err := n.rooms.Get(ctx, topicKey(room))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("cluster: topic: %w", err)
	}
	var t topic
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return "", fmt.Errorf("cluster: topic: %w", err)
	}
	return t.Text, nil
}

// OnTopic registers f to be called, from the node's own goroutine, with
// every topic set on any node from now on: the room's name in lower case,
// who set it, and the text.
func (n *Node) OnTopic(f func(room, by, text string)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.onTopic = f
}

// watchTopics passes topic changes to the OnTopic function until w stops.
func (n *Node) watchTopics(w jetstream.KeyWatcher) {
	defer close(n.watched)
	for e := range w.Updates() {
		if e == nil || e.Operation() != jetstream.KeyValuePut {
			continue
		}
		var t topic
		if json.Unmarshal(e.Value(), &t) != nil {
			continue
		}
		n.mu.Lock()
		f := n.onTopic
		n.mu.Unlock()
		if f != nil {
			f(strings.TrimPrefix(e.Key(), "topic."), t.By, t.Text)
		}
	}
}

func topicKey(room string) string { return "topic." + strings.ToLower(room) }
