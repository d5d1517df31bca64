#!/usr/bin/env python3
"""With the cluster's first node down: GET /master on the other nodes names
the next node that answers, and node_state shows the first offline.

usage: confd_master.py USER PASSWORD LIVE_NODE_URLS DOWN_NODE_ID
"""
import re
import ssl
import sys
import time
import urllib.request
import xmlrpc.client
from pprint import pprint as pp

user, password, urls, down = sys.argv[1:5]
urls = urls.split(',')
context = ssl._create_unverified_context()
want = re.match(r'https://([^/:]+):', urls[0]).group(1)
for url in urls:
    # /master may reuse an answer for 2 s (internal/confd masterCache): one
    # taken just before the first node went down names it until then.
    deadline = time.monotonic() + 10
    while True:
        ip = urllib.request.urlopen(url + 'master', context=context, timeout=30).read().decode()
        if ip == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print(url, 'master:', ip)
    assert ip == want, (url, ip, want)

url = urls[0].replace('https://', 'https://%s:%s@' % (user, password))
conn = xmlrpc.client.ServerProxy(url, context=context, allow_none=True)
r = conn.job_exec('node_state')
pp(r)
assert r['result_code'] == 0, r
state = r['result_output']
assert state[down] == 'offline' and down not in state['booted'], state
assert all(v == 'online' for k, v in state.items() if k not in ('booted', down)), state

# A verb job answers for the live nodes and says which node failed.
r = conn.job_exec('backupsync_status', None)
pp(r)
assert r['result_code'] == 1 and r['result_name'] != 'OK', r
node = [n for n in r['result_output'] if r['result_output'][n]['code'] != 0]
assert len(node) == 1 and r['result_output'][node[0]]['output'].startswith(node[0] + ' unreachable: '), r
assert ('failed on 1 of %d node(s): %s: ' % (len(r['result_output']), node[0])) in r['result_desc'], r
print('confd master: OK')
