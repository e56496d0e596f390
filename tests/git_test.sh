#!/usr/bin/env bash
# git under HAKMEM: init, commit a few thousand small files over several commits, rename and
# delete some, gc (pack-objects and friends run as child processes, preloaded too), log, fsck.
# Fixed identity and dates make every object id reproducible, so the glibc and HAKMEM runs must
# print the same thing.
source "$(dirname "$0")/preload_lib.sh"
command -v git >/dev/null || fail "git not found (tools/setup.sh installs it)"

git_workload() {
  export HOME=$PWD/home GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=$PWD/home/.gitconfig
  mkdir -p home repo
  cat >home/.gitconfig <<'CONF'
[user]
	name = HAKMEM Test
	email = test@hakmem.invalid
[init]
	defaultBranch = main
[gc]
	auto = 0
[core]
	autocrlf = false
CONF
  export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
  cd repo
  git init -q .
  local round i d l
  for round in 1 2 3 4; do
    for ((i = 0; i < 1000; i++)); do
      d=dir$((i % 37))/sub$((i % 5))
      mkdir -p "$d"
      {
        printf 'file %d round %d\n' "$i" "$round"
        for ((l = 1; l <= i % 23 + 1; l++)); do printf 'line %d\n' "$l"; done
      } >"$d/f$i.txt"
    done
    if [ "$round" -ge 3 ]; then
      git rm -q -r -f dir$((round))/sub1
      git mv "dir$((round + 4))/sub2" "moved$round"
    fi
    git add -A
    export GIT_AUTHOR_DATE="2024-01-0${round}T12:00:00Z" GIT_COMMITTER_DATE="2024-01-0${round}T12:00:00Z"
    git commit -q -m "round $round"
  done
  git tag -a v1 -m "tag v1"
  git gc -q --aggressive
  git count-objects -v | grep -E '^(count|in-pack|packs|garbage)'
  git fsck --full --strict 2>&1
  git log --stat --format='%H %an %ad %s' --date=iso-strict
  git log --format=%H | head -n 4
  git diff --stat HEAD~3 HEAD | tail -n 1
  git rev-parse HEAD 'HEAD^{tree}' v1
  git ls-tree -r HEAD | sha256sum
  git grep -c 'round 4' | wc -l
  git blame -s dir0/sub0/f0.txt
}

compare_program git_workload
echo PASS
