package cluster

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// natsAuth turns the configured credentials into nats.go options, reading
// each file now so that a wrong path stops the start instead of leaving
// the node retrying forever.
func natsAuth(cfg Config) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.CredsFile != "" {
		o := nats.UserCredentials(cfg.CredsFile)
		var check nats.Options
		if err := o(&check); err != nil {
			return nil, fmt.Errorf("cluster: NATS credentials %s: %w", cfg.CredsFile, err)
		}
		if _, err := check.UserJWT(); err != nil {
			return nil, fmt.Errorf("cluster: NATS credentials %s: %w", cfg.CredsFile, err)
		}
		if _, err := check.SignatureCB([]byte("check")); err != nil {
			return nil, fmt.Errorf("cluster: NATS credentials %s: %w", cfg.CredsFile, err)
		}
		opts = append(opts, o)
	}
	if cfg.NkeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: NATS nkey seed %s: %w", cfg.NkeyFile, err)
		}
		opts = append(opts, o)
	}
	if cfg.CAFile != "" {
		// RootCAs reads the file when applied and turns on nats.Secure.
		var check nats.Options
		if err := nats.RootCAs(cfg.CAFile)(&check); err != nil {
			return nil, fmt.Errorf("cluster: NATS CA %s: %w", cfg.CAFile, err)
		}
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	return opts, nil
}
