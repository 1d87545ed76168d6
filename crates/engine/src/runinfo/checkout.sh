# Runnel checkout: the `official_git_clone` step and the implicit checkout of a job's sources.
# Every value comes from the environment (RUNNEL_GIT_*) and is validated again here; nothing in
# this text is generated from data (S4). Values never become options: refs are fully qualified,
# the remote is `origin`, and `--` ends the options of every git command that takes one.
set -eu -o pipefail
fail() { printf 'checkout: %s\n' "$1" >&2; exit 1; }
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES \
    GIT_NAMESPACE GIT_CEILING_DIRECTORIES GIT_DISCOVERY_ACROSS_FILESYSTEM GIT_CONFIG_PARAMETERS \
    GIT_CONFIG GIT_CONFIG_GLOBAL GIT_EXEC_PATH GIT_SSH GIT_SSH_COMMAND GIT_PROXY_COMMAND GIT_ASKPASS \
    SSH_ASKPASS GIT_TEMPLATE_DIR GIT_EXTERNAL_DIFF GIT_PAGER GIT_CONFIG_COUNT
export GIT_TERMINAL_PROMPT=0 GIT_CONFIG_NOSYSTEM=1 GIT_ALLOW_PROTOCOL=https:http:ssh:git LC_ALL=C
if [ -n "${RUNNEL_CHECKOUT_ERROR:-}" ]; then fail "$RUNNEL_CHECKOUT_ERROR"; fi
count="${RUNNEL_GIT_COUNT:-0}"
[[ "$count" =~ ^[0-9]{1,2}$ ]] || fail "RUNNEL_GIT_COUNT is not a small number"
valid_ref() {
    [[ -z "$1" || "$1" == HEAD || ( "$1" =~ ^refs/[A-Za-z0-9._/+=,%@-]+$ && "$1" != *..* \
        && "$1" != */-* && "$1" != */.* && "$1" != *//* && "$1" != */ ) ]]
}
get() { local name="RUNNEL_GIT_${i}_$1"; printf '%s' "${!name:-}"; }
workspace="$PWD"
private="$(mktemp -d)"
trap 'rm -rf -- "$private"' EXIT
for ((i = 0; i < count; i++)); do
    name="$(get NAME)"; url="$(get URL)"; commit="$(get COMMIT)"; ref="$(get REF)"
    alt_ref="$(get ALT_REF)"; dir="$(get DIR)"; depth="$(get DEPTH)"; submodules="$(get SUBMODULES)"
    auth_key="$(get AUTH_KEY)"; auth="$(get AUTH)"; ssh_key="$(get SSH_KEY)"; known_hosts="$(get KNOWN_HOSTS)"
    case "$url" in '' | -*) fail "source $name: the repository URL is missing or starts with -" ;; esac
    [[ -z "$commit" || "$commit" =~ ^([0-9a-f]{40}|[0-9a-f]{64})$ ]] || fail "source $name: not a commit id"
    valid_ref "$ref" || fail "source $name: not a fully qualified ref"
    valid_ref "$alt_ref" || fail "source $name: not a fully qualified ref"
    [[ -n "$commit" || -n "$ref" ]] || fail "source $name: neither a commit nor a ref to check out"
    [[ "$depth" =~ ^[0-9]{1,9}$ ]] || fail "source $name: the depth is not a whole number"
    [[ -z "$dir" || ( "$dir" =~ ^[A-Za-z0-9._/-]+$ && "$dir" != /* && "$dir" != -* && "$dir" != *..* ) ]] \
        || fail "source $name: the directory must be a relative path inside the workspace"
    case "$submodules" in false | true | recursive) ;; *) fail "source $name: submodules must be false, true or recursive" ;; esac

    printf 'checkout: %s from %s at %s into ./%s\n' "$name" "$url" "${commit:-$ref}" "$dir"
    cd -- "$workspace"
    if [ -n "$dir" ]; then mkdir -p -- "$dir" && cd -- "$dir"; fi
    [ -d .git ] || git init --quiet
    if git remote get-url origin >/dev/null 2>&1; then
        git remote set-url -- origin "$url"
    else
        git remote add -- origin "$url"
    fi
    unset GIT_SSH_COMMAND GIT_CONFIG_KEY_0 GIT_CONFIG_VALUE_0
    export GIT_CONFIG_COUNT=0
    if [ -n "$auth" ]; then
        export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="$auth_key" GIT_CONFIG_VALUE_0="$auth"
    fi
    if [ -n "$ssh_key" ]; then
        (umask 077 && printf '%s\n' "$ssh_key" > "$private/key-$i")
        ssh_args=(ssh -i "$private/key-$i" -o IdentitiesOnly=yes -o BatchMode=yes)
        if [ -n "$known_hosts" ]; then
            (umask 077 && printf '%s\n' "$known_hosts" > "$private/known-hosts-$i")
            ssh_args+=(-o "UserKnownHostsFile=$private/known-hosts-$i" -o StrictHostKeyChecking=yes)
        else
            ssh_args+=(-o StrictHostKeyChecking=accept-new)
        fi
        printf -v GIT_SSH_COMMAND '%q ' "${ssh_args[@]}"
        export GIT_SSH_COMMAND
    fi
    depth_args=()
    if [ "$depth" != 0 ]; then depth_args=(--depth "$depth"); fi
    target=refs/remotes/origin/runnel-checkout
    fetched=""
    if [ -n "$commit" ] && git fetch --no-tags --quiet "${depth_args[@]}" -- origin "+$commit:$target"; then
        fetched=yes
    fi
    if [ -z "$fetched" ]; then
        for candidate in "$ref" "$alt_ref"; do
            [ -n "$candidate" ] || continue
            if [ -n "$commit" ]; then
                # Not served by id: fetch the ref's history and look for the commit in it.
                if git fetch --no-tags --quiet -- origin "+$candidate:$target" \
                    && git cat-file -e "$commit^{commit}" 2>/dev/null; then
                    fetched=yes && break
                fi
            elif git fetch --no-tags --quiet "${depth_args[@]}" -- origin "+$candidate:$target"; then
                commit="$(git rev-parse --verify --quiet "$target^{commit}")" && fetched=yes && break
            fi
        done
    fi
    [ -n "$fetched" ] || fail "source $name: cannot fetch ${commit:-$ref} from $url"
    git checkout --quiet --force --detach "$commit"
    if [ "$submodules" != false ]; then
        submodule_args=(--init)
        if [ "$submodules" = recursive ]; then submodule_args+=(--recursive); fi
        git submodule update "${submodule_args[@]}" "${depth_args[@]}"
    fi
    printf 'checkout: %s is at %s\n' "$name" "$(git rev-parse HEAD)"
done
