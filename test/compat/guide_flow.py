#!/usr/bin/env python3
"""Steps 4 and 7-10 of the BackupSync installation guide, as written, in
Python 3 with xmlrpc.client. The only departures: an unverified SSL context
and the daemon's port in the URL (EXAoperation listened on 443 with a
certificate the scripts trusted), files opened in binary mode (Python 3's
b64encode takes bytes), and the files' paths. The admin saves the SSHKEY
output of step 8 to the key file the way a terminal shows it: wrapped.

usage: guide_flow.py EDU01_URL EDU02_URL CLIENT_CFG SERVER_CFG WORKDIR

EDU01 is the client (source) cluster, EDU02 the server (destination). The
server cluster is never ACTIVATEd and no host key goes to the client: that
is the guide's flow.
"""
import ast
import contextlib
import io
import ssl
import sys
from base64 import b64encode
from pprint import pprint as pp
from xmlrpc.client import ServerProxy as xmlrpc

edu01_url, edu02_url, client_cfg, server_cfg, workdir = sys.argv[1:6]
key_file = workdir + '/Connection1_ssh_key_file.key'
context = ssl._create_unverified_context()
edu01 = xmlrpc(edu01_url, context=context)
edu02 = xmlrpc(edu02_url, context=context)
pname = 'Administration.BackupSync-1.0.1'


def printed(f):
    """Runs f, which prints, and returns what it printed (and prints it)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        f()
    print(out.getvalue(), end='')
    return ast.literal_eval(out.getvalue())


def codes(rows, want=0):
    for row in rows:
        assert row[1] == want, row


# Step 4: Sample Script to Install Plugin on EDU01, then on EDU02.
server = edu01
nlist = server.getNodeList()
pp(server.showPluginFunctions(pname))
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'INSTALL', '') for node in nlist]))
codes(rows)
pp([[node] + server.callPlugin(pname, node, 'STATUS', '') for node in nlist])
server = edu02
nlist = server.getNodeList()
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'INSTALL', '') for node in nlist]))
codes(rows)
pp([[node] + server.callPlugin(pname, node, 'STATUS', '') for node in nlist])

# Step 7: Sample Script to Upload Configuration File on EDU01.
server = edu01
nlist = server.getNodeList()
config = b64encode(open(client_cfg, 'rb').read())
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'UPLOAD_CONFIG', config) for node in nlist]))
codes(rows)
# Sample Script to Upload Configuration File on EDU02.
server = edu02
nlist = server.getNodeList()
config = b64encode(open(server_cfg, 'rb').read())
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'UPLOAD_CONFIG', config) for node in nlist]))
codes(rows)

# Step 8: SSH Keygen Sample Script, on the client machine (EDU01).
server = edu01
nlist = server.getNodeList()
pp(server.showPluginFunctions(pname))
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'SSHKEY', 'Connection1') for node in nlist]))
codes(rows)
# "Create a file and copy the key generated in the previous step for the
# node into this file": as the terminal shows it, wrapped at 70 columns.
with open(key_file, 'w') as f:
    for node, code, line in rows:
        f.write('\n'.join(line[i:i + 70] for i in range(0, len(line), 70)) + '\n')
print(open(key_file).read())

# Step 9: Sample Script to Upload SSH Key on EDU02.
server = edu02
nlist = server.getNodeList()
# Upload KEY
key = b64encode(open(key_file, 'rb').read ())
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'UPLOAD_KEY', key) for node in nlist]))
codes(rows)
clients = len(edu01.getNodeList())
for node, code, out in rows:
    assert out.count('stored client key') == clients, out
    assert '(pending: run SSHKEY Connection1 here to authorize)' in out, out
# Activate SSH key for "Connection1"
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'SSHKEY', 'Connection1') for node in nlist]))
codes(rows)

# Step 10: Sample Script to Activate Connection on EDU01.
server = edu01
nlist = server.getNodeList()
# Upload KEY
key = b64encode(open(key_file, 'rb').read ())
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'UPLOAD_KEY', key) for node in nlist]))
codes(rows)
for node, code, out in rows:
    assert node + ": this node's own key for Connection1: nothing to store" in out, out
# Activate SSH key for "Connection1"
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'ACTIVATE', 'Connection1') for node in nlist]))
assert rows == [[node, 0, 'activated'] for node in nlist], rows
rows = printed(lambda: pp([[node] + server.callPlugin(pname, node, 'STATUS', '') for node in nlist]))
assert rows == [[node, 0, 'activated'] for node in nlist], rows
print('guide flow: OK')
