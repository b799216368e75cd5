# The NBD server (blockstore/nbd/nbd_server.c, issue 6): a real pool and block
# store in a temporary directory, a real TCP socket, a hand-written client.
if(TARGET cairn_nbd)
  cairn_unit_test(test_nbd_server SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_nbd_server.c
                  LIBS cairn_nbd LABELS block TIMEOUT 300)
endif()
