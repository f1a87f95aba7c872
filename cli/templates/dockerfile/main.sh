#!/bin/sh
# Each request body comes in on stdin and streams back out, upper-cased.
printf '{{name}}: '
tr 'a-z' 'A-Z'
