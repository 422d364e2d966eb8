package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

func newKeysCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the encryption keys that protect signing secrets and custom header values",
	}
	var (
		batch  int
		asJSON bool
	)
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Re-encrypt every signing secret and custom header value under OUTBOXD_ENCRYPTION_KEY",
		Long: `Re-encrypt every signing secret and every subscription's custom header values
under the current key, OUTBOXD_ENCRYPTION_KEY, reading the old ones with the keys
in OUTBOXD_ENCRYPTION_KEYS_OLD (header values still in plaintext, from before
migration 7, are encrypted too). It works in small transactions while daemons run.
To rotate: give every daemon the new key as OUTBOXD_ENCRYPTION_KEY and the old one
in OUTBOXD_ENCRYPTION_KEYS_OLD, run this, then drop the old key once it reports
nothing left under it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			result, err := store.SecretsReseal(cmd.Context(), batch, func(n int64) {
				if !asJSON {
					fmt.Fprintf(a.stdout, "  %d secrets re-encrypted\n", n)
				}
			})
			if err != nil {
				return fmt.Errorf("rotate keys: %w", err)
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(result)
			}
			fmt.Fprintf(a.stdout, "done: %d secrets and the header values of %d subscriptions re-encrypted; "+
				"every secret is now under key %s (%d secrets, %d subscriptions' header values)\n",
				result.Resealed, result.HeadersResealed, result.KeyID, result.Remaining[result.KeyID], result.HeadersRemaining[result.KeyID])
			return nil
		},
	}
	rotate.Flags().IntVar(&batch, "batch", 500, "secrets per transaction")
	rotate.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.AddCommand(rotate)
	return cmd
}
