#!/usr/bin/env bash
# Install (or upgrade to) the inspector release in this bundle directory on an Atlas edge box.
#
#   sudo ./install.sh [--root DIR] [--health-timeout SECONDS] [--no-deps]
#                     [--cann-env FILE] [--mxvision-env FILE] [--user NAME]
#                     [--extra-site DIR] [--start-cmd CMD --stop-cmd CMD]
#
# Steps: verify every file against SHA256SUMS; check this box's Python and machine are the bundle's target;
# install into <root>/opt/inspector/releases/<version> (a venv with the bundled wheel and, unless --no-deps,
# the bundled dependency wheels: offline, --no-index, hash-checked, no pip config read); write where CANN's
# and mxVision's set_env.sh are (defaults under /usr/local/Ascend) to <root>/etc/inspector/ascend.env; run
# `inspector validate` and `inspector doctor` from the new release (through bin/inspector-env, as the unit
# does); switch <root>/opt/inspector/current atomically, keeping `previous`; restart the service; wait until
# the daemon reports healthy (`inspector health`); if it does not within the timeout, switch back to the
# previous release and restart it. The service runs as the owner of the MindX SDK (--user overrides), with a
# cascade's second model (stage2/) installed beside the first. Installing the version already current is a
# no-op. The root directory is a parameter so the whole procedure runs in a temporary root.
set -euo pipefail

root="/"
health_timeout=120
with_deps=1
extra_site=""
start_cmd=""
stop_cmd=""
# CANN: the toolkit on development boxes, nnae or nnrt (runtime only) on inference boxes; the first present.
cann_env=""
for candidate in ascend-toolkit nnae nnrt; do
  if [ -r "/usr/local/Ascend/$candidate/set_env.sh" ]; then cann_env="/usr/local/Ascend/$candidate/set_env.sh"; break; fi
done
cann_env="${cann_env:-/usr/local/Ascend/ascend-toolkit/set_env.sh}"
mxvision_env="/usr/local/Ascend/mxVision/set_env.sh"
run_user=""

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --health-timeout) health_timeout="$2"; shift 2 ;;
    --no-deps) with_deps=0; shift ;;
    --extra-site) extra_site="$2"; shift 2 ;;
    --start-cmd) start_cmd="$2"; shift 2 ;;
    --stop-cmd) stop_cmd="$2"; shift 2 ;;
    --cann-env) cann_env="$2"; shift 2 ;;
    --mxvision-env) mxvision_env="$2"; shift 2 ;;
    --user) run_user="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

bundle="$(cd "$(dirname "$0")" && pwd)"
cd "$bundle"

# 1. Integrity: every file of the bundle, before anything is written.
[ -f SHA256SUMS ] || die "$bundle/SHA256SUMS is missing: not a complete bundle"
if ! sha256sum --check --quiet --strict SHA256SUMS >/dev/null 2>&1; then
  sha256sum --check --quiet SHA256SUMS 2>&1 | sed 's/^/  /' >&2 || true
  die "checksum verification failed: the bundle is damaged or was modified; nothing was installed"
fi
unlisted="$(find . -type f ! -name SHA256SUMS -printf '%P\n' | sort | comm -23 - <(awk '{print $2}' SHA256SUMS | sed 's/^\*//' | sort))"
[ -z "$unlisted" ] || die "files not covered by SHA256SUMS: $unlisted"

# 2. The target: the dependency wheels are built for one Python and one machine.
want="$(python3 -c 'import json; t = json.load(open("bundle.json"))["target"]; print(t["python"], t["machine"])')"
have="$(python3 -c 'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.machine())')"
if [ "$want" != "$have" ] && [ "$with_deps" -eq 1 ]; then
  die "this bundle is for Python/machine '$want', this box has '$have' (python3): build it with inspector bundle --platform linux_${have#* } --python ${have% *}"
fi

version="$(cat VERSION)"
[[ "$version" =~ ^[A-Za-z0-9._+-]+$ ]] || die "VERSION '$version' is not a plain version string"
base="${root%/}/opt/inspector"
release="$base/releases/$version"
current="$base/current"
previous_target=""
[ -L "$current" ] && previous_target="$(readlink "$current")"

if [ "$previous_target" = "releases/$version" ]; then
  say "version $version is already installed and current; nothing to do"
  exit 0
fi

# 3. The release directory, built in place (a venv cannot be moved); `.complete` marks a finished build, so
#    an operator can tell an interrupted install (it is rebuilt from scratch on the next run).
mkdir -p "$base/releases"
rm -rf "$release"
mkdir -p "$release"
cp -a model config bin wheels requirements.lock VERSION bundle.json SHA256SUMS "$release/"
[ -d stage2 ] && cp -a stage2 "$release/"  # the second model of a cascade (config: stage2.model: ../stage2)
[ -f README.md ] && cp -a README.md "$release/"
# --system-site-packages: the MindX SDK's Python modules live in the system environment.
python3 -m venv --system-site-packages "$release/venv"
if [ -n "$extra_site" ]; then
  site="$("$release/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$extra_site" > "$site/inspector-extra-site.pth"
fi
# Offline: no index, neither pip configuration files (PIP_CONFIG_FILE=/dev/null) nor PIP_* variables
# (--isolated) of this machine, every dependency's hash checked against the lock.
offline_pip() {
  local command="$1"
  shift
  PIP_CONFIG_FILE=/dev/null "$release/venv/bin/python" -m pip --isolated --disable-pip-version-check \
    "$command" --quiet --no-index "$@"
}
if [ "$with_deps" -eq 1 ]; then
  offline_pip install --find-links "$release/wheels" --require-hashes -r requirements.lock
fi
offline_pip install --no-deps "$release"/wheels/inspector-*.whl
chmod 640 "$release"/model/*.om "$release"/stage2/*.om 2>/dev/null || true
touch "$release/.complete"

# 4. Where the Ascend environment is (read by bin/inspector-env), then checks from the new release, before
#    switching, with that environment.
mkdir -p "${root%/}/etc/inspector"
ascend_env="${root%/}/etc/inspector/ascend.env"
printf '# Written by install.sh: the set_env.sh scripts bin/inspector-env sources before inspector starts.\nCANN_SET_ENV=%q\nMXVISION_SET_ENV=%q\n' \
  "$cann_env" "$mxvision_env" > "$ascend_env"
chmod 644 "$ascend_env"
export INSPECTOR_ASCEND_ENV="$ascend_env"
config="$release/config/daemon.yaml"
"$release/bin/inspector-env" validate --config "$config" || die "inspector validate refused $config; nothing was switched"
"$release/bin/inspector-env" doctor --config "$config" >/dev/null || die "inspector doctor: this box cannot run the configured device; nothing was switched"

# 5. Service files: the unit, and the secrets file (created empty once, never overwritten, mode 600).
#    The run user: the MindX SDK refuses to start in a process whose user does not own its libmxbase.so
#    (mxBase DeviceManager.cpp UserPermissionCheck; the mxVision install guide: install user = run user), so
#    the service runs as the SDK's owner. Without an SDK (the mock device), as a system user `inspector`.
sdk_library="$(dirname "$mxvision_env")/lib/libmxbase.so"
if [ -z "$run_user" ] && [ -f "$sdk_library" ]; then
  run_user="$(stat -c %U "$sdk_library")"
  [ "$run_user" != "UNKNOWN" ] || die "$sdk_library belongs to uid $(stat -c %u "$sdk_library"), which has no user name; pass --user"
  say "the service runs as $run_user, the owner of $sdk_library (the MindX SDK refuses any other user)"
fi
run_user="${run_user:-inspector}"
[[ "$run_user" =~ ^[a-z_][a-z0-9_-]*[$]?$ ]] || die "--user '$run_user' is not a user name"
unit_dir="${root%/}/etc/systemd/system"
mkdir -p "$unit_dir" "${root%/}/etc/inspector" "${root%/}/var/lib/inspector"
sed -e "s/^User=inspector$/User=$run_user/" -e "s/^Group=inspector$/Group=$run_user/" \
  "$bundle/systemd/inspector.service" > "$unit_dir/inspector.service"
chmod 644 "$unit_dir/inspector.service"
env_file="${root%/}/etc/inspector/inspector.env"
if [ ! -f "$env_file" ]; then
  (umask 077; printf '# Secrets for the inspector daemon, e.g. CAM1_PASSWORD=...\n' > "$env_file")
fi
chmod 600 "$env_file"
if [ "$root" = "/" ] && [ "$(id -u)" -eq 0 ]; then
  if [ "$run_user" = inspector ]; then
    id inspector >/dev/null 2>&1 || useradd --system --home /var/lib/inspector --shell /usr/sbin/nologin inspector
  fi
  id "$run_user" >/dev/null 2>&1 || die "user $run_user does not exist"
  getent group HwHiAiUser >/dev/null && usermod -aG HwHiAiUser "$run_user"
  run_group="$(id -gn "$run_user")"
  sed -i "s/^Group=$run_user$/Group=$run_group/" "$unit_dir/inspector.service"
  chown -R "$run_user:$run_group" /var/lib/inspector
  # The device refuses an OM not owned by the running user (and the SDK one with a looser mode than 640).
  chown "$run_user:$run_group" "$release"/model/*.om "$release"/stage2/*.om 2>/dev/null || true
fi

restart() {
  if [ -n "$start_cmd" ]; then
    [ -z "$stop_cmd" ] || sh -c "$stop_cmd" || true
    sh -c "$start_cmd"
  elif [ "$root" = "/" ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
    systemctl enable --quiet inspector.service
    systemctl restart inspector.service
  else
    say "no service manager for root $root: not restarted"
  fi
}

switch_to() {  # atomic: a new link renamed over the old one
  ln -sfn "$1" "$base/current.new"
  mv -T "$base/current.new" "$current"
}

healthy() {
  local deadline=$((SECONDS + health_timeout))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if "$current/venv/bin/inspector" health --config "$current/config/daemon.yaml" --max-age 10 >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  return 1
}

# 6. Switch, restart, and keep it only if it reports healthy.
switch_to "releases/$version"
[ -n "$previous_target" ] && ln -sfn "$previous_target" "$base/previous"
restart
if healthy; then
  say "installed $version${previous_target:+ (previous: ${previous_target#releases/})}"
  exit 0
fi
if [ -z "$previous_target" ]; then
  die "version $version did not report healthy within ${health_timeout}s and there is no previous release; it stays installed, check 'journalctl -u inspector'"
fi
say "version $version did not report healthy within ${health_timeout}s: rolling back to ${previous_target#releases/}"
switch_to "$previous_target"
restart
if healthy; then
  die "rolled back to ${previous_target#releases/} (healthy); version $version is kept in $release for inspection"
fi
die "rolled back to ${previous_target#releases/}, which does not report healthy either; check 'journalctl -u inspector'"
