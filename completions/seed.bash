# bash completion for seed: verbs, the options of each verb, instance names (asked of
# the running node with `seed ps --json`), volume ids (`seed volume ls --json`), source
# names (`seed source ls --json`) and generations (`seed history SOURCE --json`).
# Installed by `make install` as bash-completion's completions/seed; to try it from a
# checkout: source completions/seed.bash.

# Words of `seed ... --json` output: the values of "KEY" in the objects of the top-level
# array (cli_print_json indents them by four spaces; nested objects are deeper).
_seed_json_values() {
    local key=$1
    shift
    "$@" 2>/dev/null | sed -n "s/^    \"$key\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p"
}

# The same for a number ("generation": 3).
_seed_json_numbers() {
    local key=$1
    shift
    "$@" 2>/dev/null | sed -n "s/^    \"$key\": \\([0-9][0-9]*\\),\\{0,1\\}\$/\\1/p"
}

# COMPREPLY: the words compgen "$@" offers for $cur (a local of _seed), one per line
# so that file names with spaces stay whole.
_seed_reply() {
    # Files and directories: let readline quote them and add the '/'.
    [[ $1 == -[fdc] ]] && compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen "$@" -- "$cur")
}

# The options of verb $1 in $opts, those of them that take a value in $argopts (both
# locals of _seed).
_seed_verb_opts() {
    argopts="--state-dir"
    case $1 in
    eval) opts="--json --uri --help" argopts+=" --uri" ;;
    up)
        opts="--bind --subnet --egress --grace --uri --shoot-warm --shoot-max --shoot-queue-ms
              --shoot-output-max --shoot-templates --help"
        argopts+=" --bind --subnet --grace --uri --shoot-warm --shoot-max --shoot-queue-ms
                   --shoot-output-max --shoot-templates"
        ;;
    ps) opts="--json --help" ;;
    logs) opts="--follow -f --tail -n --help" argopts+=" --tail -n" ;;
    stop | restart) opts="--time -t --help" argopts+=" --time -t" ;;
    volume) opts="--json --help" ;;
    identity) opts="--json --help" ;;
    shoot) opts="--timeout --help" argopts+=" --timeout" ;;
    apply) opts="--dry-run --json --help" ;;
    source)
        opts="--ref --webhook-secret-file --poll --json --help"
        argopts+=" --ref --webhook-secret-file --poll"
        ;;
    history) opts="--json --limit --help" argopts+=" --limit" ;;
    rollback) opts="--json --help" ;;
    events) opts="--follow -f --json --tail -n --help" argopts+=" --tail -n" ;;
    exec)
        opts="--interactive -i --tty -t --workdir -w --user -u --env -e --help"
        argopts+=" --workdir -w --user -u --env -e"
        ;;
    image)
        # the options of the sub-command (build, push or inspect), all when none yet
        case $2 in
        build)
            opts="--output -o --format --tag --max-layers --uri --json --help"
            argopts+=" --output -o --format --tag --max-layers --uri"
            ;;
        push | inspect)
            opts="--creds --authfile --insecure --ca-cert --timeout --chunk-size --json --help"
            argopts+=" --creds --authfile --ca-cert --timeout --chunk-size"
            ;;
        *) opts="--help" ;;
        esac
        ;;
    *) opts="--help" ;;
    esac
    opts+=" --state-dir"
}

_seed() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local seed=${COMP_WORDS[0]}
    local verbs="eval up ps logs stop start restart volume shoot exec apply source history rollback
                 events down image identity version help"
    local global_opts="--state-dir --help --version"
    local verb="" dashdash=0 i w
    local -a state=() args=()

    local opts="--help --state-dir" argopts="--state-dir"

    # What came before the word being completed: the verb, its arguments, the state
    # directory (to ask the same node) and whether "--" ended the options.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ $w == -- ]]; then
            dashdash=1
            break
        elif [[ $w == --state-dir ]]; then
            # "--state-dir=DIR" reaches us as three words: bash splits at '='.
            [[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))
            ((i + 1 < COMP_CWORD)) && state=(--state-dir "${COMP_WORDS[i + 1]}")
            ((i++))
        elif [[ $w == -* ]]; then
            [[ " $argopts " == *" $w "* ]] && ((i++))
        elif [[ -z $verb ]]; then
            verb=$w
            _seed_verb_opts "$verb"
        else
            args+=("$w")
            # seed image SUB: the options are the sub-command's
            [[ $verb == image && ${#args[@]} == 1 ]] && _seed_verb_opts image "$w"
        fi
    done

    COMPREPLY=()
    if ((dashdash)); then
        # The command of a shoot: a program, then files.
        if ((i + 1 == COMP_CWORD)); then
            _seed_reply -c
        else
            _seed_reply -f
        fi
        return 0
    fi
    if [[ $prev == --state-dir || ($prev == = && ${COMP_WORDS[COMP_CWORD - 2]} == --state-dir) ]]; then
        _seed_reply -d
        return 0
    fi
    if [[ $prev == --webhook-secret-file || $prev == --authfile || $prev == --ca-cert ||
        ($verb == image && ($prev == -o || $prev == --output)) ]]; then
        _seed_reply -f
        return 0
    fi
    if [[ $verb == image && $prev == --format ]]; then
        _seed_reply -W "oci oci-archive docker-archive"
        return 0
    fi
    if [[ $prev == -* && " $argopts " == *" $prev "* ]]; then
        return 0 # a number, an address, a URI: nothing to offer
    fi
    if [[ -z $verb ]]; then
        if [[ $cur == -* ]]; then
            _seed_reply -W "$global_opts"
        else
            _seed_reply -W "$verbs"
        fi
        return 0
    fi
    if [[ $cur == -* ]]; then
        if [[ $verb == source ]]; then
            # Each subcommand's own: add's, ls's, none for rm.
            case ${args[0]} in
            add) opts="--ref --webhook-secret-file --poll --help" ;;
            ls) opts="--json --help" ;;
            rm) opts="--help" ;;
            esac
            opts+=" --state-dir"
        fi
        _seed_reply -W "$opts"
        return 0
    fi
    case $verb in
    eval | up)
        ((${#args[@]} == 0)) && _seed_reply -f
        ;;
    logs | shoot)
        ((${#args[@]} == 0)) &&
            _seed_reply -W "$(_seed_json_values name "$seed" "${state[@]}" ps --json)"
        ;;
    stop | start | restart)
        _seed_reply -W "$(_seed_json_values name "$seed" "${state[@]}" ps --json)"
        ;;
    volume)
        if ((${#args[@]} == 0)); then
            _seed_reply -W "ls rm"
        elif [[ ${args[0]} == rm && ${#args[@]} == 1 ]]; then
            _seed_reply -W "$(_seed_json_values id "$seed" "${state[@]}" volume ls --json)"
        fi
        ;;
    identity)
        # seed identity NAME, or rotate|rm NAME
        if ((${#args[@]} == 0)); then
            _seed_reply -W "rotate rm $(_seed_json_values name "$seed" "${state[@]}" ps --json)"
        elif [[ (${args[0]} == rotate || ${args[0]} == rm) && ${#args[@]} == 1 ]]; then
            _seed_reply -W "$(_seed_json_values name "$seed" "${state[@]}" ps --json)"
        fi
        ;;
    source)
        if ((${#args[@]} == 0)); then
            _seed_reply -W "add ls rm"
        elif [[ ${args[0]} == rm && ${#args[@]} == 1 ]]; then
            _seed_reply -W "$(_seed_json_values name "$seed" "${state[@]}" source ls --json)"
        elif [[ ${args[0]} == add && ${#args[@]} == 2 ]]; then
            _seed_reply -d # the URL: a directory or a repository's path, or type one
        fi
        ;;
    apply)
        # A source, or one instance.
        ((${#args[@]} == 0)) &&
            _seed_reply -W "$(_seed_json_values name "$seed" "${state[@]}" source ls --json)
                            $(_seed_json_values name "$seed" "${state[@]}" ps --json)"
        ;;
    history)
        ((${#args[@]} == 0)) &&
            _seed_reply -W "$(_seed_json_values name "$seed" "${state[@]}" source ls --json)"
        ;;
    rollback)
        if ((${#args[@]} == 0)); then
            _seed_reply -W "$(_seed_json_values name "$seed" "${state[@]}" source ls --json)"
        elif ((${#args[@]} == 1)); then
            _seed_reply -W "$(_seed_json_numbers generation "$seed" "${state[@]}" history "${args[0]}" --json)"
        fi
        ;;
    exec)
        ((${#args[@]} == 0)) &&
            _seed_reply -W "$(_seed_json_values name "$seed" "${state[@]}" ps --json)"
        ;;
    image)
        if ((${#args[@]} == 0)); then
            _seed_reply -W "build push inspect"
        elif [[ ${args[0]} == build && ${#args[@]} == 2 ]] || [[ ${args[0]} != build && ${#args[@]} == 1 ]]; then
            _seed_reply -f # build: the project; push, inspect: the image
        fi
        ;;
    esac
    return 0
}

complete -F _seed seed
