# The HTTP/1.1 codec's differential test links Debian's http-parser; nothing else does.
$(BUILD)/rel/tests/unit/proxy/http1_diff_test: LDLIBS += -lhttp_parser
$(BUILD)/san/tests/unit/proxy/http1_diff_test: LDLIBS += -lhttp_parser
