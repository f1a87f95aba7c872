#!/bin/sh
# The request body is on stdin; what this prints is the response. The request's method,
# path and query are in $Http_Method, $Http_Path and $Http_Query; headers in $Http_<Name>.
body=$(cat)
echo "Hello from {{name}}: ${body:-nothing}"
