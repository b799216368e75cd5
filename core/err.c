#include "core/err.h"

#include <string.h>

const char *cairn_strerror(int err)
{
	switch (err) {
	case CAIRN_ECORRUPT:
		return "stored data failed its checksum";
	case CAIRN_EFORMAT:
		return "on-disk format is newer than this build";
	case CAIRN_ENOTFOUND:
		return "not found";
	case CAIRN_EEXISTS:
		return "already exists";
	case CAIRN_ENOTEMPTY:
		return "not empty";
	case CAIRN_EINVAL:
		return "invalid argument";
	case CAIRN_ETOOBIG:
		return "too large";
	case CAIRN_EAUTH:
		return "signature does not match";
	case CAIRN_ENOKEY:
		return "unknown access key";
	case CAIRN_EEXPIRED:
		return "request has expired";
	case CAIRN_ESKEW:
		return "request time too skewed";
	case CAIRN_EDENIED:
		return "access denied";
	case CAIRN_ENOSPACE:
		return "no space left in the pool";
	case CAIRN_EDEGRADED:
		return "too few devices available";
	case CAIRN_EBADDIGEST:
		return "content digest mismatch";
	case CAIRN_ESHORT:
		return "body shorter than announced";
	case CAIRN_ERANGE:
		return "range not satisfiable";
	case CAIRN_EPRECOND:
		return "precondition failed";
	case CAIRN_ENOTMODIFIED:
		return "not modified";
	case CAIRN_ESHUTDOWN:
		return "shutting down";
	default:
		break;
	}
	if (err < 0 && err > CAIRN_EBASE)
		return strerror(-err);
	return "unknown error";
}
