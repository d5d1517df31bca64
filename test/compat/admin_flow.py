#!/usr/bin/env python3
"""An admin's pairing of two clusters, the way the BackupSync installation
guide drives EXAoperation (steps 1, 4 and 7-11), in Python 3 with
xmlrpc.client: uninstall, install, upload the configs, exchange the SSH keys,
activate, check the status, deactivate.

usage: admin_flow.py SOURCE_URL DEST_URL CLIENT_CFG SERVER_CFG WORKDIR

It prints what the guide's pp() calls print and asserts their shapes.
"""
import ssl
import sys
from base64 import b64encode
from pprint import pprint as pp
from xmlrpc.client import ServerProxy as xmlrpc

source_url, dest_url, client_cfg, server_cfg, workdir = sys.argv[1:6]
context = ssl._create_unverified_context()
source = xmlrpc(source_url, context=context)
dest = xmlrpc(dest_url, context=context)

# Scripts hard-code the version they were written for.
pname = 'Administration.BackupSync-1.0.1'
pp(source.showPluginList())
assert source.showPluginList()[0].startswith('Administration.BackupSync-')


def each(server, verb, arg=''):
    rows = [[node] + server.callPlugin(pname, node, verb, arg) for node in server.getNodeList()]
    pp(rows)
    return rows


def expect(rows, code, output):
    for row in rows:
        assert row[1] == code and row[2] == output, (row, code, output)


# Step 1: deactivate and uninstall whatever was there.
for server in (source, dest):
    each(server, 'STATUS')
    each(server, 'DEACTIVATE')
    expect(each(server, 'UNINSTALL'), 0, 'not installed')

# Step 4: install.
functions = source.showPluginFunctions(pname)
pp(functions)
assert sorted(functions) == ['ACTIVATE', 'DEACTIVATE', 'GETLOG', 'INSTALL', 'SSHKEY',
                             'STATUS', 'UNINSTALL', 'UPLOAD_CONFIG', 'UPLOAD_KEY'], functions
for server in (source, dest):
    expect(each(server, 'INSTALL'), 0, 'installed')
    expect(each(server, 'STATUS'), 0, 'not activated')

# Step 7: upload the configurations (bytes from b64encode travel as base64).
config = b64encode(open(client_cfg, 'rb').read())
for row in each(source, 'UPLOAD_CONFIG', config):
    assert row[1] == 0, row
config = b64encode(open(server_cfg, 'rb').read()).decode()
for row in each(dest, 'UPLOAD_CONFIG', config):
    assert row[1] == 0, row

# Step 8: a public key per source node.
keys = each(source, 'SSHKEY', 'Connection1')
for node, code, line in keys:
    assert code == 0 and line.startswith('ssh-') and line.endswith('backupsync:Connection1@' + node), line
key_file = workdir + '/Connection1_ssh_key_file.key'
with open(key_file, 'w') as f:
    f.write('\n'.join(line for _, _, line in keys) + '\n')

# Step 9: upload the keys to the destination and activate them there; the
# destination answers with its host keys, which the source pins.
key = b64encode(open(key_file, 'rb').read())
for row in each(dest, 'UPLOAD_KEY', key):
    assert row[1] == 0, row
host_keys = each(dest, 'SSHKEY', 'Connection1')
with open(workdir + '/host_keys.key', 'w') as f:
    f.write('\n'.join(line for _, _, line in host_keys) + '\n')
for row in each(source, 'UPLOAD_KEY', b64encode(open(workdir + '/host_keys.key', 'rb').read())):
    assert row[1] == 0, row

# Step 10: activate both sides.
expect(each(dest, 'ACTIVATE', 'Connection1'), 0, 'activated')
expect(each(source, 'ACTIVATE', 'Connection1'), 0, 'activated')
expect(each(source, 'STATUS', ''), 0, 'activated')
status = source.callPlugin(pname, source.getNodeList()[0], 'STATUS', 'Connection1')
pp(status)
assert status[0] == 0 and 'Connection1 (activated)' in status[1], status

# Step 11: deactivate on two nodes, as the guide does.
nodes = source.getNodeList()[:2]
pp([[node] + source.callPlugin(pname, node, 'DEACTIVATE', 'Connection1') for node in nodes])
rows = each(source, 'STATUS', '')
assert [r[2] for r in rows] == ['not activated'] * 2 + ['activated'] * (len(rows) - 2), rows
print('admin flow: OK')
