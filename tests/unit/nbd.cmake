# NBD protocol codec (blockstore/nbd/nbd_proto.c): pure, no sockets.
cairn_unit_test(test_nbd_proto SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_nbd_proto.c
                LIBS cairn_nbdproto LABELS quick block TIMEOUT 60)
