#!/usr/bin/env python3
"""An admin's pairing of two clusters through the ConfD dialect, made the
way the ConfD seed makes its calls: GET /master with urllib (no login), then
ServerProxy(url, context=ssl._create_unverified_context(), allow_none=True)
and job_exec(name, {'params': {...}}), checking the seed's result shapes.

usage: confd_flow.py USER PASSWORD SOURCE_NODE_URLS DEST_NODE_URLS CLIENT_CFG SERVER_CFG WORKDIR

NODE_URLS are the daemons' https://IP:PORT/ URLs, comma-separated, in the
cluster's order.
"""
import re
import ssl
import sys
import urllib.request
import xmlrpc.client
from base64 import b64encode
from pprint import pprint as pp

user, password, source_urls, dest_urls, client_cfg, server_cfg, workdir = sys.argv[1:8]
source_urls, dest_urls = source_urls.split(','), dest_urls.split(',')
context = ssl._create_unverified_context()


def host_port(url):
    return re.match(r'https://([^/:]+):(\d+)/', url).groups()


def master(urls):
    """GET /master on every node, without a login, as the seed does."""
    ips = set()
    for url in urls:
        ip = urllib.request.urlopen(url + 'master', context=context, timeout=30).read().decode()
        ips.add(ip)
    assert len(ips) == 1, ips
    ip = ips.pop()
    # The seed then connects to port 443 of that IP; our loopback daemons
    # each have their own port: take the master's.
    port = [p for h, p in map(host_port, urls) if h == ip]
    assert port, (ip, urls)
    return ip, 'https://%s:%s@%s:%s/' % (user, password, ip, port[0])


src_ip, src_url = master(source_urls)
dst_ip, dst_url = master(dest_urls)
print('master:', src_ip, dst_ip)
assert src_ip == host_port(source_urls[0])[0] and dst_ip == host_port(dest_urls[0])[0]
source = xmlrpc.client.ServerProxy(src_url, context=context, allow_none=True)
dest = xmlrpc.client.ServerProxy(dst_url, context=context, allow_none=True)

jobids = []


def ok(result, output=True):
    """A successful result in the seed's shape."""
    assert result['result_code'] == 0, result
    assert result['result_name'] == 'OK' and result['result_desc'] == 'Success', result
    assert re.fullmatch(r'\d+\.\d+', result['result_jobid']), result
    assert ('result_output' in result) == output, result
    jobids.append(result['result_jobid'])
    return result.get('result_output')


def failed(result, code, *words):
    assert result['result_code'] == code and result['result_name'] != 'OK', result
    for w in words:
        assert w in result['result_desc'], (w, result)
    print('failed as expected:', result['result_code'], result['result_name'], result['result_desc'])


def job(server, name, **params):
    r = server.job_exec(name, {'params': params}) if params else server.job_exec(name)
    pp(r)
    return r


def per_node(r, nodes, code=0, output=None):
    """A backupsync_* job's result_output: {node: {'code', 'output'}}."""
    out = r['result_output']
    assert sorted(out) == sorted(nodes), (out, nodes)
    for node in nodes:
        assert set(out[node]) == {'code', 'output'}, out[node]
        assert out[node]['code'] == code, (node, out[node])
        if output is not None:
            assert out[node]['output'] == output, (node, out[node], output)
    return out


# The ConfD surface: job_list, job_help, job_desc, on / and on /RPC2.
jobs = ok(source.job_list())
for name in ['backupsync_install', 'backupsync_uninstall', 'backupsync_upload_config', 'backupsync_sshkey',
             'backupsync_upload_key', 'backupsync_activate', 'backupsync_deactivate', 'backupsync_status',
             'backupsync_getlog', 'node_list', 'node_state', 'remote_volume_list', 'remote_volume_state',
             'db_backup_list']:
    assert name in jobs, (name, jobs)
rpc2 = xmlrpc.client.ServerProxy(src_url.rstrip('/'), context=context, allow_none=True)  # path /RPC2
assert ok(rpc2.job_list()) == jobs
assert ok(xmlrpc.client.ServerProxy(src_url + 'rpc2', context=context, allow_none=True).job_list()) == jobs
h = ok(source.job_help('backupsync_activate'))
pp(h)
assert h['mandatory'] == ['connection'] and h['optional'] == ['nodes'] and user in h['allowed_users'], h
h = ok(source.job_help('remote_volume_state'))
assert h['mandatory'] == ['remote_volume_name'] and h['substitutes'] == {'remote_volume_id': 'remote_volume_name'}, h
assert 'synced' in ok(source.job_desc('db_backup_list'))

src_nodes = list(ok(source.job_exec('node_list')).values())
src_names = [n['name'] for n in sorted(src_nodes, key=lambda n: int(n['id']))]
dst_names = [n['name'] for n in sorted(ok(dest.job_exec('node_list')).values(), key=lambda n: int(n['id']))]
print('nodes:', src_names, dst_names)

# Step 1: deactivate and uninstall whatever was there (None is a value).
for server, names in ((source, src_names), (dest, dst_names)):
    job(server, 'backupsync_status', connection=None)
    job(server, 'backupsync_deactivate')
    per_node(job(server, 'backupsync_uninstall'), names, 0, 'not installed')

# Step 4: install; the job changed stored state: result_revision.
for server, names in ((source, src_names), (dest, dst_names)):
    r = job(server, 'backupsync_install')
    ok(r)
    assert isinstance(r['result_revision'], int), r
    per_node(r, names, 0, 'installed')
    r = job(server, 'backupsync_status')
    assert 'result_revision' not in r, r
    per_node(r, names, 0, 'not activated')

# Step 7: the configurations, as text (the client's) and as base64 bytes (the server's).
r = job(source, 'backupsync_upload_config', config=open(client_cfg).read())
ok(r)
for out in per_node(r, src_names).values():
    assert out['output'].startswith('configuration uploaded (file sha256 '), out
    assert ': 3 added, 0 replaced, 0 unchanged, 0 kept, 0 removed' in out['output'], out
r = job(dest, 'backupsync_upload_config', config=b64encode(open(server_cfg, 'rb').read()))
ok(r)

# Step 8: a public key per source node.
out = per_node(job(source, 'backupsync_sshkey', connection='Connection1'), src_names)
for node in src_names:
    line = out[node]['output']
    assert line.startswith('ssh-') and line.endswith('backupsync:Connection1@' + node), line
keys = '\n'.join(out[n]['output'] for n in src_names) + '\n'

# Step 9: the keys to the destination, its host keys back to the source.
ok(job(dest, 'backupsync_upload_key', key=b64encode(keys.encode()).decode()))
host_keys = per_node(job(dest, 'backupsync_sshkey', connection='Connection1'), dst_names)
ok(job(source, 'backupsync_upload_key', key='\n'.join(host_keys[n]['output'] for n in dst_names) + '\n'))

# Step 10: activate both sides; Connection2 (direct) needs no keys.
per_node(job(dest, 'backupsync_activate', connection='Connection1'), dst_names, 0, 'activated')
per_node(job(source, 'backupsync_activate', connection='Connection1'), src_names, 0, 'activated')
per_node(job(source, 'backupsync_activate', connection='Connection2'), src_names, 0, 'activated')
per_node(job(source, 'backupsync_status'), src_names, 0, 'activated')
out = per_node(job(source, 'backupsync_status', connection='Connection1', nodes=[src_names[0]]), [src_names[0]])
assert out[src_names[0]]['output'].startswith('health: '), out  # health leads STATUS CONN
assert '\nconnection: Connection1 (activated)\n' in out[src_names[0]]['output'], out
assert 'ftp-pw' not in str(out), 'a status holds the FTP password'

# Step 11: deactivate on two nodes (by name and by ConfD id), as the guide does.
ids = {n['name']: n['id'] for n in src_nodes}
r = job(source, 'backupsync_deactivate', connection='Connection1', nodes=[src_names[0], int(ids[src_names[1]])])
per_node(r, src_names[:2], 0, 'not activated')
out = per_node(job(source, 'backupsync_status', connection='Connection1'), src_names)
assert [out[n]['output'].split('\n')[1] for n in src_names] == \
    ['connection: Connection1 (not activated)'] * 2 + ['connection: Connection1 (activated)'] * (len(src_names) - 2), out

# GETLOG with lines as an int and as a string.
for lines in (5, '5'):
    for node, out in per_node(job(source, 'backupsync_getlog', lines=lines, nodes=src_names[-1]), [src_names[-1]]).items():
        assert len(out['output'].split('\n')) <= 5, out

# A failed job: non-zero code, the reason and the node named, the per-node results kept.
r = job(source, 'backupsync_activate', connection='Connection9')
failed(r, 1, 'backupsync_activate failed on %d of %d node(s)' % (len(src_names), len(src_names)), 'no connection "Connection9"')
per_node(r, src_names, 256)

# node_list and node_state in the seed's shapes.
nl = ok(source.job_exec('node_list'))
for id, n in nl.items():
    assert n['id'] == id and n['name'] in src_names and re.fullmatch(r'[\d.]+', n['private_ip']), n
ns = ok(source.job_exec('node_state'))
assert sorted(ns['booted']) == sorted(nl) and all(ns[id] == 'online' for id in nl), ns
for b in ns['booted'].values():
    assert re.fullmatch(r'\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}', b), b

# Remote volumes: one per copying connection, probed by logging in.
assert ok(source.job_exec('remote_volume_list')) == ['Connection1', 'Connection2', 'Connection3']
for params, state in (({'remote_volume_name': 'Connection1'}, 'Online'),   # through the SSH tunnel
                      ({'remote_volume_name': 'r0002'}, 'Online'),         # direct
                      ({'remote_volume_id': 10003}, 'Connection problem')):  # nobody listens
    states = ok(job(source, 'remote_volume_state', **params))
    assert states == [state] * len(src_names), (params, states)
failed(job(source, 'remote_volume_state', remote_volume_name='Connection7'), 1, 'no remote volume "Connection7"')

# What scripts meet when something is wrong.
failed(job(source, 'db_shutdown_everything'), 3, 'unknown job "db_shutdown_everything"')
failed(job(source, 'backupsync_upload_key'), 2, "missing mandatory parameter 'key'")
failed(job(source, 'remote_volume_state'), 2, "missing mandatory parameter 'remote_volume_name'")
failed(job(source, 'db_backup_list', db=None, dbname='DB1'), 2, "missing mandatory parameter 'db_name'")
failed(job(source, 'backupsync_status', conection='Connection1'), 2, "unknown parameter 'conection'")
failed(job(source, 'backupsync_status', nodes=['n9999']), 2, "unknown node 'n9999'")
failed(job(source, 'db_start', db_name='DB1'), 4, 'not provided by backupsync')
failed(source.job_help('db_stop'), 4, 'not provided by backupsync')
bad = xmlrpc.client.ServerProxy(src_url.replace(':' + password + '@', ':wrong@'), context=context, allow_none=True)
try:
    bad.job_exec('node_list')
    raise SystemExit('a wrong password was accepted')
except xmlrpc.client.ProtocolError as e:
    assert e.errcode == 401, e
    print('wrong password:', e.errcode, e.errmsg)

# Job ids increase on a daemon.
numbers = [int(j.split('.')[1]) for j in jobids if j.split('.')[0] == jobids[0].split('.')[0]]
assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), jobids
print('confd flow: OK')
