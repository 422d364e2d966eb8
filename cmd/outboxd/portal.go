package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/httpapi"
)

func newPortalCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "portal",
		Short: "Make, list and revoke links to the tenant portal",
		Long: `The portal (/portal/ on the daemon's HTTP server) lets an organization manage its own
webhooks in a browser. A portal link opens once: it starts a browser session that sees
exactly what the organization's API token sees, until the link's expiry. Operators use
the console at /console/ (sign in at /login with an admin token).`,
	}

	var (
		org, agent, publicURL string
		expiresIn             time.Duration
		asJSON                bool
	)
	link := &cobra.Command{
		Use:   "link --org ORGANIZATION [--agent AGENT] [--expires-in 12h]",
		Short: "Print a one-time link that opens the portal for an organization",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if org == "" {
				return errors.New("--org is required: a portal shows one organization")
			}
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			created, err := store.PortalSessionCreate(cmd.Context(), &outbox.PortalSessionCreateParams{
				OrganizationID: org, AgentID: agent, CreatedBy: "cli", ExpiresIn: expiresIn,
			})
			if err != nil {
				return err
			}
			url := httpapi.PortalLink(publicURL, created.Token)
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(struct {
					*outbox.PortalSession
					URL string `json:"url"`
				}{created.PortalSession, url})
			}
			fmt.Fprintln(a.stdout, url)
			fmt.Fprintf(a.stderr, "portal session %s for organization %s: the link opens once, until %s\n", created.ID, org, created.ExpiresAt.Local().Format(time.DateTime))
			return nil
		},
	}
	link.Flags().StringVar(&org, "org", "", "the organization the portal shows")
	link.Flags().StringVar(&agent, "agent", "", "show only this agent's webhooks")
	link.Flags().DurationVar(&expiresIn, "expires-in", outbox.PortalSessionExpiresInDefault, "how long the link may wait to be opened, and the session then lasts, from now (1m to 720h)")
	link.Flags().StringVar(&publicURL, "public-url", "http://127.0.0.1:8080", "where browsers reach the daemon's HTTP server")
	link.Flags().BoolVar(&asJSON, "json", false, "print the session and its url as JSON")
	a.bindEnv(link.Flags(), "public-url", "OUTBOXD_PUBLIC_URL")

	var (
		listOrg  string
		all      bool
		paging   pageFlags
		listJSON bool
	)
	list := &cobra.Command{
		Use:   "list [--org ORGANIZATION] [--all]",
		Short: "List portal sessions, newest first (not their links)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			before, err := paging.key()
			if err != nil {
				return err
			}
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			sessions, err := store.PortalSessionList(cmd.Context(), &outbox.PortalSessionListParams{OrganizationID: listOrg, IncludeEnded: all, Before: before, Limit: paging.fetch()})
			if err != nil {
				return err
			}
			pg := pageOf(&paging, sessions, func(s *outbox.PortalSession) string { return s.ID })
			return printPage(a, cmd, pg, listJSON, "ID\tORGANIZATION\tAGENT\tSTATE\tCREATED BY\tEXPIRES", func(s *outbox.PortalSession) string {
				return strings.Join([]string{s.ID, s.OrganizationID, orDash(s.AgentID), string(s.State), orDash(s.CreatedBy), s.ExpiresAt.Local().Format(time.DateTime)}, "\t")
			})
		},
	}
	list.Flags().StringVar(&listOrg, "org", "", "only this organization's sessions")
	list.Flags().BoolVar(&all, "all", false, "include expired and revoked sessions")
	paging.register(list.Flags(), "sessions")
	list.Flags().BoolVar(&listJSON, "json", false, `print {"data": [...], "next_cursor": ...}`)

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "End a portal session: its link no longer opens and its browser is signed out",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			if _, err := store.PortalSessionRevoke(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("portal session %s: %w", args[0], err)
			}
			fmt.Fprintf(a.stdout, "portal session %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(link, list, revoke)
	return cmd
}
