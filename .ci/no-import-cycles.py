#!/usr/bin/env python3
"""No module of the library imports a module that imports it back, directly or through others.

Reads every file under src/ (the argument), takes the modules each one names through
`crate::...`, `super::...` and `use crate::{...}` / `use super::{...}` groups, and a parent
naming its child (`child::Item`), leaving out comments and the `#[cfg(test)]` module, and
reports every strongly connected set of more than one module. `-v` prints the graph.
Exit status 1 when there is a cycle.
"""
import re,os,sys,itertools
args=[a for a in sys.argv[1:] if a!='-v']
root=args[0] if args else 'src'
files={}
for d,_,fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p=os.path.join(d,f); rel=os.path.relpath(p,root)[:-3]
            parts=rel.split('/')
            if parts[-1]=='mod': parts=parts[:-1]
            if parts==['lib']: continue
            files['::'.join(parts)]=open(p).read()
mods=set(files)
def strip(t):
    # drop comments and tests module
    t=re.sub(r'//[^\n]*','',t)
    i=t.find('#[cfg(test)]')
    return t[:i] if i>=0 else t
g={m:set() for m in mods}
for m,t in files.items():
    t=strip(t)
    for ref in re.findall(r'crate::((?:\w+::)*\w+)',t):
        parts=ref.split('::')
        # longest prefix that is a module
        for k in range(len(parts),0,-1):
            c='::'.join(parts[:k])
            if c in mods: 
                if c!=m: g[m].add(c)
                break
    # grouped imports: use crate::{a, b::c}; use super::{x, y}
    for base_kw, group in re.findall(r'use (crate|super)::\{([^}]*)\}', t):
        for item in group.split(','):
            item=item.strip()
            if not item: continue
            ref=item.split(' as ')[0]
            if base_kw=='crate':
                parts=ref.split('::')
            else:
                parts=m.split('::')[:-1]+ref.split('::')
            hit=None
            for k in range(len(parts),0,-1):
                c='::'.join(parts[:k])
                if c in mods: hit=c; break
            if hit is None and base_kw=='super':
                hit='::'.join(m.split('::')[:-1]) or None
            if hit and hit!=m: g[m].add(hit)
    # a parent naming its children: child::Item
    for child in [c for c in mods if c.startswith(m+'::') and c.count('::')==m.count('::')+1]:
        name=child.split('::')[-1]
        if re.search(r'(?<![\w:])'+name+r'::', t): g[m].add(child)
    for ref in re.findall(r'super::((?:\w+::)*\w+)',t):
        base=m.split('::')[:-1]
        parts=base+ref.split('::')
        for k in range(len(parts),0,-1):
            c='::'.join(parts[:k])
            if c in mods:
                if c!=m: g[m].add(c)
                break
# SCCs (Tarjan)
idx={};low={};st=[];on=set();out=[];n=[0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v]=low[v]=n[0];n[0]+=1;st.append(v);on.add(v)
    for w in g[v]:
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        c=[]
        while True:
            w=st.pop();on.discard(w);c.append(w)
            if w==v:break
        out.append(c)
for v in sorted(g):
    if v not in idx: sc(v)
bad=[c for c in out if len(c)>1]
# ignore parent<->child edges? report all
if '-v' in sys.argv[1:]:
    for m in sorted(g): print(m,'->',sorted(g[m]))
for c in bad: print('cycle:',sorted(c))
if not bad:
    print(f'no import cycle among {len(g)} modules')
sys.exit(1 if bad else 0)
