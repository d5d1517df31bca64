#!/usr/bin/env python3
"""What an admin's script meets when something is wrong: a wrong password
(401), an unknown verb or node (a Fault), a broken configuration (code 256
with the line), a node that is down (its row fails fast, the others answer).

usage: errors.py URL BAD_PASSWORD_URL DOWN_NODE
"""
import ssl
import sys
import time
import xmlrpc.client
from base64 import b64encode
from pprint import pprint as pp

url, bad_url, down_node = sys.argv[1:4]
context = ssl._create_unverified_context()
server = xmlrpc.client.ServerProxy(url, context=context)
pname = 'Administration.BackupSync-1.0.1'

try:
    xmlrpc.client.ServerProxy(bad_url, context=context).getNodeList()
    raise SystemExit('a wrong password was accepted')
except xmlrpc.client.ProtocolError as e:
    assert e.errcode == 401, e
    print('wrong password:', e.errcode, e.errmsg)

for call in (lambda: server.callPlugin(pname, 'n0011', 'REBOOT', ''),
             lambda: server.callPlugin(pname, 'n9999', 'STATUS', ''),
             lambda: server.callPlugin('Administration.Other-1.0', 'n0011', 'STATUS', '')):
    try:
        call()
        raise SystemExit('no fault')
    except xmlrpc.client.Fault as f:
        assert f.faultCode == -1 and f.faultString.startswith('Unexpected Zope exception: '), f
        print('fault:', f.faultString)

server.callPlugin(pname, 'n0011', 'INSTALL', '')
broken = b64encode(b'Connection1\n{\nSTART_CYCLE = sometimes\n}\n').decode()
code, output = server.callPlugin(pname, 'n0011', 'UPLOAD_CONFIG', broken)
print([code, output])
assert code == 256 and output.startswith('configuration not changed: ') and '\n3:15: START_CYCLE' in output, output

# Verbs are case-insensitive and the argument may be omitted.
assert server.callPlugin(pname, 'n0011', 'status') == [0, 'not activated']

start = time.time()
rows = [[node] + server.callPlugin(pname, node, 'STATUS', '') for node in server.getNodeList()]
pp(rows)
for node, code, output in rows:
    if node == down_node:
        assert code == 256 and output.startswith(node + ' unreachable: '), output
    else:
        assert code == 0, (node, code, output)
assert time.time() - start < 10, 'a down node held up the others'
print('errors: OK')
