# HTTPS on the S3 listener (helper B, issue 4): certificate/key checks and a
# real server driven by libcurl with a CA the test makes in memory.
if(TARGET cairn_objstore)
  cairn_unit_test(test_s3_tls SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_tls.c
                  LIBS cairn_objstore PkgConfig::CURL PkgConfig::SSL
                  LABELS quick s3 TIMEOUT 60)
endif()
