// Package control is the daemon's control plane: the EXAoperation plugin
// surface (showPluginList, getNodeList, showPluginFunctions, callPlugin)
// over XML-RPC on HTTPS with Basic auth (Login: failed logins are logged
// and throttled per source address). Any daemon answers for the whole
// cluster: a callPlugin for another node is forwarded to that node's daemon,
// and a node that does not answer costs its own row a few seconds, never
// the others'.
package control
