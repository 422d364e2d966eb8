package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/outbox"
)

func newTokensCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tokens",
		Aliases: []string{"token"},
		Short:   "Create, list and revoke organization API tokens",
		Long: `Organization tokens reach only their organization's subscriptions, deliveries and
events through the REST API (others answer 404). Admin tokens are not managed here:
they come from OUTBOXD_API_TOKEN.`,
	}

	var (
		org, name string
		asJSON    bool
	)
	create := &cobra.Command{
		Use:   "create --org ORGANIZATION [--name NAME]",
		Short: "Create a token; prints it once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if org == "" {
				return errors.New("--org is required: a token sees one organization")
			}
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			token, err := store.TokenCreate(cmd.Context(), &outbox.TokenCreateParams{OrganizationID: org, Name: name})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(token)
			}
			fmt.Fprintf(a.stdout, "token %s for organization %s:\n\n  %s\n\nKeep it now: it is stored only as a digest and will not be shown again.\n", token.ID, org, token.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&org, "org", "", "the organization the token may see")
	create.Flags().StringVar(&name, "name", "", "what the token is for")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON (with the token as \"token\")")

	var (
		listOrg  string
		all      bool
		paging   pageFlags
		listJSON bool
	)
	list := &cobra.Command{
		Use:   "list [--org ORGANIZATION] [--all] [--limit N] [--cursor CURSOR]",
		Short: "List tokens, oldest first (not their values)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			after, err := paging.key()
			if err != nil {
				return err
			}
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			tokens, err := store.TokenList(cmd.Context(), &outbox.TokenListParams{OrganizationID: listOrg, IncludeRevoked: all, After: after, Limit: paging.fetch()})
			if err != nil {
				return err
			}
			pg := pageOf(&paging, tokens, func(t *outbox.Token) string { return t.ID })
			return printPage(a, cmd, pg, listJSON, "ID\tORGANIZATION\tNAME\tPREFIX\tCREATED\tLAST USED\tREVOKED", func(t *outbox.Token) string {
				return strings.Join([]string{t.ID, t.OrganizationID, orDash(t.Name), t.Prefix + "…",
					t.CreatedAt.Local().Format(time.DateTime), timeOrDash(t.LastUsedAt), timeOrDash(t.RevokedAt)}, "\t")
			})
		},
	}
	list.Flags().StringVar(&listOrg, "org", "", "only this organization's tokens")
	list.Flags().BoolVar(&all, "all", false, "include revoked tokens")
	paging.register(list.Flags(), "tokens")
	list.Flags().BoolVar(&listJSON, "json", false, `print {"data": [...], "next_cursor": ...}`)

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := store.TokenRevoke(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("token %s: %w", args[0], err)
			}
			fmt.Fprintf(a.stdout, "token %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}
