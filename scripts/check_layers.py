#!/usr/bin/env python3
"""Check src/'s dependency structure against DESIGN.md's layers.

Fails (exit 1, a FAIL: line per finding) on:
  a. an edge from a lower layer to a higher one (an #include, or, when
     build/obj exists, an undefined symbol in one object that another
     directory's object defines);
  b. a cycle between directories (src/<dir>);
  c. an include cycle between modules (foo.c and foo.h are one module).
     Symbol edges feed a and b only: several .c files implement one header
     (net/backend.h declares every backend's constructor, vmm/boot.h the
     loader's parts), so at module level they are cycles by construction.
Edges in KNOWN_EDGES are tolerated until the design work that removes them
lands; anything else is new and fails.

Usage: scripts/check_layers.py [--root DIR] [--obj DIR] [--no-symbols]
"""
import argparse
import os
import re
import subprocess
import sys

# Layer ranks: an edge may only go to the same or a lower rank. From
# DESIGN.md's layout (core < virtio < transport; core < virtio < net, fs;
# fuse < fs: the FUSE protocol and its backend interface under the virtio-fs
# device and the backends; net, fs, transport < vmm < api < cli), with the
# three directories the design does not name placed where the code puts them:
# http is a protocol helper on core alone (api and mmds parse requests with
# it), mmds sits on net (it intercepts net's frames) and http, below api,
# which configures it, jail, the jailer's steps (chroot, cgroup, namespaces,
# privileges) on core alone, under the command line that sequences them, and machine, the assembly layer, puts the devices,
# backends and the VM together from a configuration, under the API (which
# will configure a machine before it starts) and the command line.
RANKS = {
	"core": 0,
	"virtio": 1,
	"http": 1,
	"fuse": 1,
	"jail": 1,
	"transport": 2,
	"net": 2,
	"fs": 2,
	"rng": 2,
	"blk": 2,
	"vsock": 2,
	"balloon": 2,
	"mmds": 3,
	"vmm": 3,
	"machine": 4,
	"api": 5,
	"cli": 6,
}

# Edges tolerated for now, module to module ("dir/base"), each with why.
# Remove an entry when its edge goes; the check says when one is stale.
KNOWN_EDGES = {}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def module_of(path):
	"""src/dir/foo.c and src/dir/foo.h are both "dir/foo"; so is
	foo_internal.h, the private header foo's own files share."""
	rel = os.path.relpath(path, "src")
	base = os.path.splitext(rel)[0]
	return base[: -len("_internal")] if base.endswith("_internal") else base


def dir_of(module):
	return module.split("/", 1)[0]


def include_edges(root):
	"""{(from_module, to_module): [where, ...]} from #include "..." lines."""
	edges = {}
	src = os.path.join(root, "src")
	for dirpath, _, files in os.walk(src):
		for name in sorted(files):
			if not name.endswith((".c", ".h")):
				continue
			path = os.path.join(dirpath, name)
			rel = os.path.relpath(path, root)
			with open(path, encoding="utf-8", errors="replace") as f:
				for lineno, line in enumerate(f, 1):
					m = INCLUDE_RE.match(line)
					if not m:
						continue
					target = resolve(root, dirpath, m.group(1))
					if target is None:
						continue
					a = module_of(os.path.relpath(path, root))
					b = module_of(target)
					if a != b:
						edges.setdefault((a, b), []).append(
							f"{rel}:{lineno}: #include \"{m.group(1)}\"")
	return edges


def resolve(root, dirpath, inc):
	"""The src/ file an include names (-Isrc, or the including directory)."""
	for base in (os.path.join(root, "src"), dirpath):
		cand = os.path.normpath(os.path.join(base, inc))
		if os.path.isfile(cand):
			rel = os.path.relpath(cand, root)
			if rel.startswith("src" + os.sep):
				return rel
	return None


def symbol_edges(root, objdir):
	"""{(from_module, to_module): [where, ...]} from nm on objdir/src/*/*.o."""
	defined = {}
	undefined = {}
	base = os.path.join(objdir, "src")
	for dirpath, _, files in os.walk(base):
		for name in sorted(files):
			if not name.endswith(".o"):
				continue
			path = os.path.join(dirpath, name)
			mod = os.path.splitext(os.path.relpath(path, base))[0]
			# An object left behind by a deleted source is no edge.
			if not os.path.isfile(os.path.join(root, "src", mod + ".c")):
				continue
			out = subprocess.run(["nm", "-P", path], check=True,
					     capture_output=True, text=True).stdout
			for line in out.splitlines():
				parts = line.split()
				if len(parts) < 2:
					continue
				sym, kind = parts[0], parts[1]
				if kind == "U":
					undefined.setdefault(mod, set()).add(sym)
				elif kind in "TDBRCVWG":
					defined.setdefault(sym, mod)
	edges = {}
	for mod, syms in undefined.items():
		for sym in sorted(syms):
			owner = defined.get(sym)
			if owner and owner != mod:
				edges.setdefault((mod, owner), []).append(f"{mod}.o uses {sym}")
	return edges


def sccs(nodes, edges):
	"""Tarjan's strongly connected components with more than one node."""
	adj = {n: [] for n in nodes}
	for a, b in edges:
		adj[a].append(b)
	index, low, on, stack, out = {}, {}, set(), [], []
	counter = [0]

	def visit(v):
		# Iterative, so deep include chains never hit Python's recursion limit.
		work = [(v, iter(adj[v]))]
		index[v] = low[v] = counter[0]
		counter[0] += 1
		stack.append(v)
		on.add(v)
		while work:
			node, it = work[-1]
			nxt = next(it, None)
			if nxt is None:
				work.pop()
				if work:
					low[work[-1][0]] = min(low[work[-1][0]], low[node])
				if low[node] == index[node]:
					comp = []
					while True:
						w = stack.pop()
						on.discard(w)
						comp.append(w)
						if w == node:
							break
					if len(comp) > 1:
						out.append(sorted(comp))
			elif nxt not in index:
				index[nxt] = low[nxt] = counter[0]
				counter[0] += 1
				stack.append(nxt)
				on.add(nxt)
				work.append((nxt, iter(adj[nxt])))
			elif nxt in on:
				low[node] = min(low[node], index[nxt])

	for n in sorted(nodes):
		if n not in index:
			visit(n)
	return out


def main():
	ap = argparse.ArgumentParser()
	ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
	ap.add_argument("--obj", default=None, help="object tree (default ROOT/build/obj)")
	ap.add_argument("--no-symbols", action="store_true")
	args = ap.parse_args()
	root = os.path.abspath(args.root)
	objdir = args.obj or os.path.join(root, "build", "obj")

	edges = include_edges(root)
	inc_edges = set(edges)
	kinds = "includes"
	if not args.no_symbols and os.path.isdir(os.path.join(objdir, "src")):
		for k, v in symbol_edges(root, objdir).items():
			edges.setdefault(k, []).extend(v)
		kinds = "includes and symbols"
	elif not args.no_symbols:
		print(f"note: {objdir}/src missing (run make first): includes only")

	failures = 0
	used_known = set()

	def fail(msg, where):
		nonlocal failures
		failures += 1
		print(f"FAIL: {msg}")
		for w in where[:5]:
			print(f"    {w}")
		if len(where) > 5:
			print(f"    ... {len(where) - 5} more")

	for d in sorted({dir_of(m) for e in edges for m in e}):
		if d not in RANKS:
			fail(f"src/{d} has no layer: add it to RANKS in {__file__}", [])

	live = {}
	for (a, b), where in sorted(edges.items()):
		if (a, b) in KNOWN_EDGES:
			used_known.add((a, b))
			continue
		live[(a, b)] = where
		da, db = dir_of(a), dir_of(b)
		if da != db and RANKS.get(da, 99) < RANKS.get(db, 99):
			fail(f"layer: {a} ({da}, rank {RANKS.get(da)}) depends on "
			     f"{b} ({db}, rank {RANKS.get(db)})", where)

	dir_edges = {}
	for (a, b), where in live.items():
		if dir_of(a) != dir_of(b):
			dir_edges.setdefault((dir_of(a), dir_of(b)), []).extend(where)
	dirs = {d for e in dir_edges for d in e}
	for comp in sccs(dirs, dir_edges):
		# The upward edges first: they are the ones to remove.
		inner = sorted(((a, b) for a, b in dir_edges if a in comp and b in comp),
			       key=lambda e: RANKS.get(e[0], 99) >= RANKS.get(e[1], 99))
		where = [w for e in inner for w in dir_edges[e]]
		fail("directory cycle: " + " <-> ".join(comp), where)

	inc_live = {k: v for k, v in live.items() if k in inc_edges}
	mods = {m for e in inc_live for m in e}
	for comp in sccs(mods, inc_live):
		where = [f"{a} -> {b}: {ws[0]}" for (a, b), ws in sorted(inc_live.items())
			 if a in comp and b in comp]
		fail("module cycle: " + " <-> ".join(comp), where)

	for k in sorted(set(KNOWN_EDGES) - used_known):
		print(f"note: known edge {k[0]} -> {k[1]} no longer exists: "
		      f"remove it from KNOWN_EDGES")
	for k in sorted(used_known):
		print(f"note: tolerated {k[0]} -> {k[1]} ({KNOWN_EDGES[k]})")

	if failures:
		print(f"layers: {failures} violation(s) over {len(edges)} module edges ({kinds})")
		return 1
	print(f"layers: {len(edges)} module edges ({kinds}) follow the layer order, no cycles")
	return 0


if __name__ == "__main__":
	sys.exit(main())
