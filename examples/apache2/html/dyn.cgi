#!/bin/sh
# A CGI script: Apache (mod_cgid) runs it for each request.
echo "Content-Type: text/plain"
echo
echo "CGI $GATEWAY_INTERFACE, request $REQUEST_METHOD $REQUEST_URI from $REMOTE_ADDR:$REMOTE_PORT, pid $$"
