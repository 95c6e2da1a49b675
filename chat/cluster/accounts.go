package cluster

import (
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/chat/accounts"
)

// Accounts is an accounts.Store shared by every node of a deployment, in a
// JetStream key-value bucket: registering a name is a create, which
// JetStream refuses if the name exists, so two nodes can't both register
// it.
type Accounts struct{ n *Node }

var _ accounts.Store = (*Accounts)(nil)

// Accounts returns the deployment's accounts.
func (n *Node) Accounts() *Accounts { return &Accounts{n} }

// Register implements accounts.Store.
func (a *Accounts) Register(name, password string) error {
	h, err := accounts.Hash(password)
	if err != nil {
		return err
	}
	ctx, cancel := a.n.op()
	defer cancel()
	_, err = a.n.accounts.Create(ctx, strings.ToLower(name), h)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return accounts.ErrExists
	}
	return err
}

// Check implements accounts.Store.
func (a *Accounts) Check(name, password string) error {
	h, err := a.hash(name)
	if err != nil {
		return err
	}
	return accounts.Verify(h, password)
}

// Exists implements accounts.Store.
func (a *Accounts) Exists(name string) (bool, error) {
	h, err := a.hash(name)
	return h != nil, err
}

// hash returns name's password hash, nil if there is no such account.
func (a *Accounts) hash(name string) ([]byte, error) {
	ctx, cancel := a.n.op()
	defer cancel()
	e, err := a.n.accounts.Get(ctx, strings.ToLower(name))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return e.Value(), nil
}
