package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newCompletionCmd is `ice completion SHELL`: cobra's completion script
// generators for root.
func newCompletionCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script for ice (bash, zsh, fish or powershell)",
		Long: `Print a script that completes ice's commands, flags and arguments in a shell.
Load it in the current shell, or install it where the shell looks for
completions (the examples below).

  bash  needs the bash-completion package (v2). Current shell:
          source <(ice completion bash)
        for every session:
          ice completion bash > ~/.local/share/bash-completion/completions/ice

  zsh   needs "autoload -U compinit; compinit" in ~/.zshrc. Current shell:
          source <(ice completion zsh)
        for every session, into a directory of $fpath:
          ice completion zsh > "${fpath[1]}/_ice"

  fish  current shell:
          ice completion fish | source
        for every session:
          ice completion fish > ~/.config/fish/completions/ice.fish

  powershell
          ice completion powershell | Out-String | Invoke-Expression`,
		Example: `  source <(ice completion bash)
  ice completion zsh > "${fpath[1]}/_ice"
  ice completion fish > ~/.config/fish/completions/ice.fish`,
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		Args:                  cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(w, true)
			case "zsh":
				return root.GenZshCompletion(w)
			case "fish":
				return root.GenFishCompletion(w, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(w)
			}
			return fmt.Errorf("completion: unknown shell %q (bash, zsh, fish or powershell)", args[0])
		},
	}
}
