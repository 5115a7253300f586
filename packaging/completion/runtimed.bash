# bash completion for runtimectl and runtimed. Both know their own
# commands and flags: asked with --generate-bash-completion after the
# words typed so far, they print what may come next.
_runtimed_complete() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local -a typed=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local candidates
  if [[ $cur == -* ]]; then
    # "--" would end the flags: "-" asks for them all.
    candidates=$("${typed[@]}" "${cur/#--/-}" --generate-bash-completion 2>/dev/null)
  else
    candidates=$("${typed[@]}" --generate-bash-completion 2>/dev/null)
  fi
  local IFS=$'\n'
  # shellcheck disable=SC2207 # one candidate per line
  COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
}
complete -o bashdefault -o default -F _runtimed_complete runtimectl runtimed
